"""The protocol file, its validation, risk tiering and checkpoint planning, with no database."""

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patients.protocol import (
    PROTOCOL_DIR,
    TIERS,
    ProtocolError,
    ScheduleFacts,
    assess,
    load_protocol_file,
    plan,
)

SPEC = Path("/work/shared/clinical/spec.md")
SHIPPED = PROTOCOL_DIR / "2026.1.toml"
PROTOCOL = load_protocol_file(SHIPPED)


def spec_source_keys() -> set[str]:
    """S0, S1 from the spec's key line; E1… from its list of external sources."""
    text = SPEC.read_text(encoding="utf-8")
    key_line = next(line for line in text.splitlines() if line.startswith("Keys:"))
    keys = set(re.findall(r"\*\*(S\d+)\*\*", key_line))
    external = text.split("## External sources", 1)[1]
    keys |= {f"E{number}" for number in re.findall(r"(?:^|\. )E(\d+) ", external, flags=re.MULTILINE)}
    return keys


SPEC_KEYS = spec_source_keys()


# --- The shipped protocol -----------------------------------------------------------------------


def test_spec_keys_are_read_from_the_spec_text():
    assert {"S0", "S1"} <= SPEC_KEYS
    assert {f"E{n}" for n in range(1, 22)} <= SPEC_KEYS
    assert "E22" not in SPEC_KEYS


def test_shipped_protocol_2026_1_loads_with_every_spec_checkpoint():
    assert PROTOCOL.version == "2026.1"
    assert {rule.id for rule in PROTOCOL.checkpoints} == {f"CP-{n:02d}" for n in range(1, 17)}
    assert len(PROTOCOL.factors) == 10
    assert {series.tier for series in PROTOCOL.intensification} == {"elevated", "high"}


def every_sourced_entry():
    for rule in PROTOCOL.checkpoints:
        yield f"checkpoint {rule.id}", rule.source
    for factor in PROTOCOL.factors:
        yield f"risk factor {factor.id}", factor.source
    for series in PROTOCOL.intensification:
        yield f"intensification {series.id}", series.source


@pytest.mark.parametrize(("entry", "source"), list(every_sourced_entry()), ids=[e for e, _ in every_sourced_entry()])
def test_every_protocol_entry_names_a_spec_source_or_design(entry, source):
    assert source.strip(), f"{entry} has no source"
    named = set(re.findall(r"\b[SE]\d+\b", source))
    assert named <= SPEC_KEYS, f"{entry} cites keys the spec does not define: {named - SPEC_KEYS}"
    assert "[DESIGN]" in source or named, f"{entry}: source {source!r} is neither [DESIGN] nor a spec key"


# --- Validation ---------------------------------------------------------------------------------


def edit_entry(text: str, entry_id: str, old: str, new: str) -> str:
    """Replace `old` by `new` inside the first TOML table whose id is `entry_id`, and only there."""
    start = text.index(f'id = "{entry_id}"')
    end = text.find("[[", start)
    end = len(text) if end == -1 else end
    block = text[start:end]
    assert block.count(old) == 1, f"{old!r} is not exactly once in {entry_id}"
    return text[:start] + block.replace(old, new) + text[end:]


def write_variant(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "2026.1.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unchanged_copy_of_the_shipped_file_loads_from_elsewhere(tmp_path):
    copy = load_protocol_file(write_variant(tmp_path, SHIPPED.read_text(encoding="utf-8")))

    assert copy == PROTOCOL


@pytest.mark.parametrize(
    ("entry_id", "old", "new", "words"),
    [
        ("CP-03", "latest = 18\n", "", ["latest"]),
        ("CP-05", 'anchor = "fracture"', 'anchor = "surgery"', ["anchor", "surgery"]),
        ("CP-11", 'id = "CP-11"', 'id = "CP-10"', ["duplicate"]),
        ("CP-08", 'audience = "patient_reminder"', 'audience = "carrier_pigeon"', ["audience", "carrier_pigeon"]),
        ("CP-02", "earliest = 7", "earliest = 11", ["earliest"]),
        ("CP-14", 'at = ["CP-02", "CP-04"]', 'at = ["CP-02", "CP-99"]', ["CP-99"]),
        ("INT-HIGH-VISIT", 'tier = "high"', 'tier = "critical"', ["tier", "critical"]),
        ("RISK-FX-AGE", 'fact = "age"', 'fact = "shoe_size"', ["shoe_size"]),
    ],
    ids=[
        "missing-latest",
        "unknown-anchor",
        "duplicate-id",
        "unknown-audience",
        "earliest-after-target",
        "at-unknown-checkpoint",
        "unknown-tier",
        "unknown-fact",
    ],
)
def test_a_bad_entry_is_refused_with_an_error_naming_the_file_and_the_entry(tmp_path, entry_id, old, new, words):
    text = edit_entry(SHIPPED.read_text(encoding="utf-8"), entry_id, old, new)
    named_id = "CP-10" if entry_id == "CP-11" else entry_id

    with pytest.raises(ProtocolError) as excinfo:
        load_protocol_file(write_variant(tmp_path, text))

    message = str(excinfo.value)
    assert "2026.1.toml" in message
    assert named_id in message
    for word in words:
        assert word in message


def test_invalid_toml_is_refused_with_an_error_naming_the_file_and_the_line(tmp_path):
    text = edit_entry(SHIPPED.read_text(encoding="utf-8"), "CP-04", "target = 42", "target = 42 days")
    bad_line = text.splitlines().index("target = 42 days") + 1

    with pytest.raises(ProtocolError) as excinfo:
        load_protocol_file(write_variant(tmp_path, text))

    message = str(excinfo.value)
    assert message.startswith("2026.1.toml")
    assert f"line {bad_line}" in message


def test_a_file_whose_version_differs_from_its_name_is_refused(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8").replace('version = "2026.1"', 'version = "2026.2"', 1)

    with pytest.raises(ProtocolError, match=r"2026\.1\.toml.*2026\.2"):
        load_protocol_file(write_variant(tmp_path, text))


# --- Risk tiering -------------------------------------------------------------------------------

NO_RISK = {
    "intravertebral_cleft": False,
    "posterior_fascia_oedema": False,
    "cement_separated": False,
    "facet_joint_violation": False,
    "lowest_hu": 150,
    "bmd_lowest_t_score": -1.0,
    "cement_leakage": False,
    "tl_junction": False,
    "age": 70,
    "no_medication_by_week_16": False,
}


def assessed(day14_pain=None, new_fracture=False, **changes):
    return assess(NO_RISK | changes, PROTOCOL, new_fracture=new_fracture, day14_pain=day14_pain)


def test_a_patient_with_every_fact_recorded_and_no_risk_is_standard_with_nothing_missing():
    result = assessed()

    assert (result.tier, result.pain_points, result.fracture_points) == ("standard", 0, 0)
    assert result.factors == ()
    assert result.missing == ()
    assert not result.incomplete


# (changed facts, factor id, kind, points, spec §2 source keys of that field)
SPEC_FACTORS = [
    ({"intravertebral_cleft": True}, "RISK-PAIN-CLEFT", "pain", 1, {"S0", "E1"}),
    ({"posterior_fascia_oedema": True}, "RISK-PAIN-OEDEMA", "pain", 1, {"S0", "E1", "E20"}),
    ({"cement_separated": True}, "RISK-PAIN-SEPARATED", "pain", 1, {"S0", "E1"}),
    ({"facet_joint_violation": True}, "RISK-PAIN-FACET", "pain", 2, {"S0", "E1"}),
    ({"lowest_hu": 99}, "RISK-FX-LOW-BONE", "fracture", 1, {"S0", "E2", "E10"}),
    ({"bmd_lowest_t_score": -2.5}, "RISK-FX-LOW-BONE", "fracture", 1, {"S0", "E3"}),
    ({"cement_leakage": True}, "RISK-FX-LEAKAGE", "fracture", 1, {"S0", "E2"}),
    ({"tl_junction": True}, "RISK-FX-TL-JUNCTION", "fracture", 1, {"S0", "E2"}),
    ({"age": 80}, "RISK-FX-AGE", "fracture", 1, {"S0", "E3"}),
    ({"no_medication_by_week_16": True}, "RISK-FX-NO-MEDICATION", "fracture", 1, {"E21"}),
]


@pytest.mark.parametrize(
    ("changes", "factor_id", "kind", "points", "keys"),
    SPEC_FACTORS,
    ids=[case[1] + "-" + next(iter(case[0])) for case in SPEC_FACTORS],
)
def test_each_spec_factor_contributes_its_points_with_its_source(changes, factor_id, kind, points, keys):
    result = assessed(**changes)

    assert [(c.id, c.kind, c.points) for c in result.factors] == [(factor_id, kind, points)]
    assert keys <= set(re.findall(r"\b[SE]\d+\b", result.factors[0].source))
    assert (result.pain_points, result.fracture_points) == ((points, 0) if kind == "pain" else (0, points))


@pytest.mark.parametrize(
    ("changes", "fracture_points"),
    [
        ({"lowest_hu": 100}, 0),
        ({"lowest_hu": 99}, 1),
        ({"lowest_hu": 65}, 1),
        ({"lowest_hu": 64}, 2),
        ({"bmd_lowest_t_score": -2.4}, 0),
        ({"bmd_lowest_t_score": -2.5}, 1),
        ({"bmd_lowest_t_score": -3.4}, 1),
        ({"bmd_lowest_t_score": -3.5}, 2),
        ({"lowest_hu": 90, "bmd_lowest_t_score": -3.0}, 1),
        ({"lowest_hu": 50, "bmd_lowest_t_score": -4.0}, 2),
        ({"age": 79}, 0),
        ({"age": 80}, 1),
    ],
)
def test_bone_density_and_age_thresholds_sit_where_the_spec_puts_them(changes, fracture_points):
    assert assessed(**changes).fracture_points == fracture_points


@pytest.mark.parametrize(
    ("changes", "new_fracture", "day14_pain", "tier"),
    [
        ({"intravertebral_cleft": True}, False, None, "elevated"),
        ({"intravertebral_cleft": True, "posterior_fascia_oedema": True}, False, None, "high"),
        ({"facet_joint_violation": True}, False, None, "high"),
        ({"cement_leakage": True}, False, None, "standard"),
        ({"cement_leakage": True, "tl_junction": True}, False, None, "elevated"),
        ({"cement_leakage": True, "tl_junction": True, "age": 80}, False, None, "elevated"),
        ({"cement_leakage": True, "tl_junction": True, "age": 80, "lowest_hu": 99}, False, None, "high"),
        ({"bmd_lowest_t_score": -3.5, "cement_leakage": True}, False, None, "elevated"),
        ({"bmd_lowest_t_score": -3.5, "cement_leakage": True, "tl_junction": True}, False, None, "high"),
        ({}, True, None, "high"),
        ({"intravertebral_cleft": True}, False, 4, "high"),
        ({"intravertebral_cleft": True}, False, 3, "elevated"),
        ({}, False, 9, "standard"),
    ],
    ids=[
        "cleft-1-pain",
        "2-pain",
        "facet",
        "1-fracture",
        "2-fracture",
        "3-fracture",
        "4-fracture",
        "t-score-3-fracture",
        "t-score-4-fracture",
        "new-fracture",
        "cleft-day14-pain-4",
        "cleft-day14-pain-3",
        "day14-pain-without-cleft",
    ],
)
def test_tier_follows_the_spec_thresholds(changes, new_fracture, day14_pain, tier):
    result = assessed(day14_pain=day14_pain, new_fracture=new_fracture, **changes)

    assert result.tier == tier
    assert bool(result.reasons) == (tier != "standard")


def test_missing_facts_are_listed_and_add_no_points():
    facts = {name: None for name in NO_RISK}

    result = assess(facts, PROTOCOL)

    assert (result.tier, result.pain_points, result.fracture_points) == ("standard", 0, 0)
    assert set(result.missing) == set(NO_RISK)
    assert len(result.missing) == len(set(result.missing))
    assert result.incomplete


def test_an_unrecorded_fact_beside_a_recorded_risk_still_leaves_a_point_earned():
    result = assessed(lowest_hu=None, intravertebral_cleft=None, facet_joint_violation=True)

    assert result.tier == "high"
    assert (result.pain_points, result.fracture_points) == (2, 0)
    assert set(result.missing) == {"lowest_hu", "intravertebral_cleft"}


def test_an_unrecorded_fact_is_listed_as_missing_even_when_another_fact_already_scores_its_factor():
    """Spec §2: a missing field raises an "incomplete risk profile" task, whatever the other fields say."""
    result = assessed(lowest_hu=None, bmd_lowest_t_score=-4.0)

    assert result.fracture_points == 2
    assert "lowest_hu" in result.missing


# --- Planning -----------------------------------------------------------------------------------

BASE_CODES = {f"CP-{n:02d}" for n in range(1, 13)} | {"CP-15"}


@st.composite
def schedule_facts(draw):
    procedure_date = draw(st.dates(min_value=date(2020, 1, 1), max_value=date(2032, 12, 31)))
    fracture_date = draw(st.none() | st.integers(0, 400).map(lambda days: procedure_date - timedelta(days=days)))
    medication = draw(st.none() | st.integers(-3650, 400).map(lambda days: procedure_date + timedelta(days=days)))
    dxa = draw(st.none() | st.integers(0, 3650).map(lambda days: procedure_date - timedelta(days=days)))
    return ScheduleFacts(
        procedure_date=procedure_date,
        fracture_date=fracture_date,
        medication_started_on=medication,
        last_dxa_on=dxa,
        brace_prescribed=draw(st.booleans()),
    )


planning = settings(max_examples=300, deadline=None, database=None)


@planning
@given(facts=schedule_facts(), tier=st.sampled_from(TIERS))
def test_every_planned_window_is_ordered_and_never_before_the_procedure(facts, tier):
    for item in plan(facts, tier, PROTOCOL):
        assert item.earliest <= item.target <= item.latest, item
        assert item.earliest >= facts.procedure_date, item


@planning
@given(facts=schedule_facts(), tier=st.sampled_from(TIERS))
def test_planning_is_deterministic_and_keys_are_unique(facts, tier):
    first = plan(facts, tier, PROTOCOL)

    assert plan(facts, tier, PROTOCOL) == first
    keys = [item.key for item in first]
    assert len(keys) == len(set(keys))
    assert [item.target for item in first] == sorted(item.target for item in first)


@planning
@given(facts=schedule_facts(), tier=st.sampled_from(TIERS))
def test_plan_holds_the_spec_checkpoints_that_the_facts_call_for(facts, tier):
    codes = {item.code for item in plan(facts, tier, PROTOCOL)}
    recent_dxa = facts.last_dxa_on is not None and (facts.procedure_date - facts.last_dxa_on).days <= 730

    spec_codes = {code for code in codes if code.startswith("CP-")} - ({"CP-16"} if tier == "high" else set())
    expected = BASE_CODES - ({"CP-06"} if recent_dxa else set())
    expected |= {"CP-13"} if facts.medication_started_on else set()
    expected |= {"CP-14"} if facts.brace_prescribed else set()
    assert spec_codes == expected
    assert ("CP-16" in codes) == (tier == "high")
    assert any(code.startswith("INT-ELEVATED") for code in codes) == (tier == "elevated")
    assert any(code.startswith("INT-HIGH") for code in codes) == (tier == "high")


@planning
@given(facts=schedule_facts(), tier=st.sampled_from(TIERS))
def test_procedure_anchored_windows_are_exact_days_after_the_procedure(facts, tier):
    by_key = {item.key: item for item in plan(facts, tier, PROTOCOL)}
    day = facts.procedure_date

    for code, (earliest, target, latest) in {
        "CP-01": (1, 1, 3),
        "CP-04": (28, 42, 49),
        "CP-12": (350, 365, 395),
    }.items():
        item = by_key[(code, 1)]
        assert (item.earliest, item.target, item.latest) == (
            day + timedelta(days=earliest),
            day + timedelta(days=target),
            day + timedelta(days=latest),
        )
    if facts.brace_prescribed:
        assert (by_key[("CP-14", 1)].target, by_key[("CP-14", 2)].target) == (
            day + timedelta(days=10),
            day + timedelta(days=42),
        )
