"""The protocol file, its validation, risk tiering and checkpoint planning, with no database."""

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patients import protocol as protocol_module
from patients.protocol import (
    INTERVALS,
    OUTCOME_FIELDS,
    PROTOCOL_DIR,
    ROLES,
    TIERS,
    ProtocolError,
    ScheduleFacts,
    assess,
    available_versions,
    get_protocol,
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
    for entry in new_entries():
        yield f"{type(entry).__name__} {entry.id}", entry.source


def new_entries():
    """The entries that took clinical content out of code: roles, outcomes, escalation, intervals,
    check-in invitations and second-opinion information."""
    yield from PROTOCOL.roles
    yield from PROTOCOL.outcomes
    yield from PROTOCOL.escalation
    yield from PROTOCOL.intervals
    yield PROTOCOL.checkin
    yield PROTOCOL.second_opinion_information


@pytest.mark.parametrize(("entry", "source"), list(every_sourced_entry()), ids=[e for e, _ in every_sourced_entry()])
def test_every_protocol_entry_names_a_spec_source_or_design(entry, source):
    assert source.strip(), f"{entry} has no source"
    named = set(re.findall(r"\b[SE]\d+\b", source))
    assert named <= SPEC_KEYS, f"{entry} cites keys the spec does not define: {named - SPEC_KEYS}"
    assert "[DESIGN]" in source or named, f"{entry}: source {source!r} is neither [DESIGN] nor a spec key"


def test_every_new_entry_has_an_id_and_the_code_knows_the_spec_keys():
    listed = list(new_entries())

    assert len(listed) == len(ROLES) + 5 + 3 + len(INTERVALS) + 2
    assert all(isinstance(entry.id, str) and entry.id.strip() for entry in listed), listed
    assert protocol_module.SPEC_KEYS == SPEC_KEYS


def test_every_shipped_version_loads():
    assert available_versions()
    for version in available_versions():
        assert get_protocol(version).version == version


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


# --- Clinical content the code reads from the file -----------------------------------------------
# Each expected value is the one the code holds today (file and constant named), so that reading the
# accessor instead changes nothing.

MEDICATION = ("medication_started", "medication_drug", "medication_started_on", "medication_not_started_reason")
DXA = ("dxa_t_score", "dxa_date")


def test_outcome_fields_are_those_of_the_worklist_today():
    """alerts/dashboard.py OUTCOME_FIELDS and OPTIONAL_OUTCOMES."""
    expected = {"CP-06": DXA, "CP-13": DXA, "CP-07": MEDICATION, "CP-09": MEDICATION, "CP-12": MEDICATION}

    for rule in PROTOCOL.checkpoints:
        assert PROTOCOL.outcome_fields(rule.id) == expected.get(rule.id, ()), rule.id
    assert PROTOCOL.outcome_fields("INT-HIGH-PRO") == ()
    assert PROTOCOL.outcome_field_names == DXA + MEDICATION == OUTCOME_FIELDS


@pytest.mark.parametrize(
    ("code", "values", "errors"),
    [
        (
            "CP-07",
            {"medication_started": None},
            {"medication_started": ["CP-07 needs the medication started, or the reason why not."]},
        ),
        ("CP-07", {"medication_started": False}, {}),
        ("CP-07", {"medication_started": True}, {}),
        ("CP-06", {"dxa_t_score": None}, {"dxa_t_score": ["CP-06 needs the DXA result (T-score and date)."]}),
        ("CP-13", {"dxa_t_score": None}, {"dxa_t_score": ["CP-13 needs the DXA result (T-score and date)."]}),
        ("CP-13", {"dxa_t_score": -2.1}, {}),
        ("CP-09", {"medication_started": None}, {}),
        ("CP-12", {"medication_started": None}, {}),
        ("CP-03", {"dxa_t_score": None, "medication_started": None}, {}),
    ],
)
def test_outcome_errors_are_those_of_complete_checkpoint_today(code, values, errors):
    """patients/services/outcomes.py complete_checkpoint: CP-07 needs medication_started, CP-06 and CP-13 a T-score."""
    assert PROTOCOL.outcome_errors(code, values) == errors


def test_each_role_is_played_by_the_checkpoint_the_code_names_today():
    """services._day14_pain CP-03; kpis CP-06, CP-07, CP-12; fhir CP-06 then CP-13, and CP-07;
    services.sweep_checkpoint_states CP-07; alerting.submit_report CP-16."""
    assert {role: PROTOCOL.checkpoint_for_role(role) for role in ROLES} == {
        "day14_pain": "CP-03",
        "dxa": "CP-06",
        "medication": "CP-07",
        "year_review": "CP-12",
        "repeat_dxa": "CP-13",
        "imaging_review": "CP-16",
    }


def test_default_escalation_policies_are_those_of_alerting_today():
    """alerts/escalation.py DEFAULT_POLICIES."""
    step = lambda minutes, notify: {"after_minutes": minutes, "notify": notify}  # noqa: E731
    expected = {
        "emergency": [step(0, "responsible_clinician"), step(10, "coordinators"), step(20, "on_call")],
        "urgent": [step(0, "responsible_clinician"), step(120, "coordinators"), step(240, "on_call")],
        "routine": [step(0, "responsible_clinician"), step(2880, "coordinators")],
    }

    for tier, steps in expected.items():
        assert PROTOCOL.escalation_policy(tier) == steps


def test_an_escalation_policy_handed_out_can_be_changed_without_changing_the_protocol():
    policy = PROTOCOL.escalation_policy("urgent")
    policy[0]["after_minutes"] = 99
    policy.append({"after_minutes": 999, "notify": "on_call"})

    assert PROTOCOL.escalation_policy("urgent")[0]["after_minutes"] == 0
    assert len(PROTOCOL.escalation_policy("urgent")) == 3


def test_link_lifetimes_and_intervals_are_those_of_the_code_today():
    """messages.ACK_LINK_VALID 24 h; messages._checkin and demo_checkin_link 7 days; views
    CHECKIN_SESSION_SECONDS 2 h; alerting EXTRA_CHECKIN_AFTER 3 days (the review's 2 working days are in
    [responses], counted on the clinic's working time);
    protocol recent DXA 730 days; services.sweep_checkins "invitations_sent >= 2"."""
    assert PROTOCOL.link_lifetime("acknowledge") == timedelta(hours=24)
    assert PROTOCOL.link_lifetime("checkin") == timedelta(days=7) == timedelta(days=PROTOCOL.checkin.link_valid_days)
    assert PROTOCOL.link_lifetime("checkin_form") == timedelta(seconds=2 * 3600)
    assert PROTOCOL.extra_checkin_after == timedelta(days=3)
    assert PROTOCOL.recent_dxa_days == 730
    assert PROTOCOL.checkin_invitations == 2
    assert (PROTOCOL.checkin.resend_after_days, PROTOCOL.checkin.call_after_days) == (2, 2)


def test_check_in_checkpoints_are_those_alerts_rules_reads():
    assert PROTOCOL.checkin.checkpoints == frozenset(PROTOCOL.raw["checkin"]["checkpoints"])
    assert "CP-01" in PROTOCOL.checkin.checkpoints
    assert "INT-HIGH-PRO" in PROTOCOL.checkin.checkpoints


def finding_codes(raw: dict) -> set[str]:
    codes = {entry["id"] for entry in raw["red_flags"] + raw["second_opinion"]}
    return codes | {raw["pain_not_improving"]["id"], raw["early_warning"]["id"]}


def test_second_opinion_information_shows_for_the_findings_the_view_picks_today():
    """alerts/views.py: a finding code starting "SO-", or PAIN_NOT_IMPROVING."""
    codes = finding_codes(PROTOCOL.raw)

    assert {"RF-01", "SO-2", "SO-4", "PAIN_NOT_IMPROVING", "PAIN_DAY14"} <= codes
    for code in codes:
        assert PROTOCOL.shows_second_opinion(code) == (code.startswith("SO-") or code == "PAIN_NOT_IMPROVING"), code


def test_the_planner_reads_how_recent_a_dxa_must_be_from_the_file(tmp_path):
    text = edit_entry(SHIPPED.read_text(encoding="utf-8"), "recent_dxa", "days = 730", "days = 365")
    shorter = load_protocol_file(write_variant(tmp_path, text))
    day = date(2026, 3, 2)
    facts = ScheduleFacts(procedure_date=day, last_dxa_on=day - timedelta(days=400))

    assert "CP-06" not in {item.code for item in plan(facts, "standard", PROTOCOL)}
    assert "CP-06" in {item.code for item in plan(facts, "standard", shorter)}


def refusal(tmp_path: Path, text: str) -> str:
    """The error message of loading `text` as protocol 2026.1 (which must fail)."""
    with pytest.raises(ProtocolError) as excinfo:
        load_protocol_file(write_variant(tmp_path, text))
    return str(excinfo.value)


def drop_entry(text: str, entry_id: str) -> str:
    """Remove the array table whose id is `entry_id`, header to the next table."""
    start = text.rindex("[[", 0, text.index(f'id = "{entry_id}"'))
    end = text.find("\n[", text.index(f'id = "{entry_id}"'))
    return text[:start] + text[end + 1 :]


@pytest.mark.parametrize(
    ("entry_id", "old", "new", "words"),
    [
        ("ESC-URGENT", 'source = "[DESIGN]"', "", ["source"]),
        ("OUTCOME-CP-07", 'source = "E8; E19; fields [DESIGN]"', 'source = "E8; E22"', ["E22"]),
        ("acknowledge_link", 'source = "[DESIGN]"', 'source = "common sense"', ["common sense"]),
        ("medication", 'checkpoint = "CP-07"', 'checkpoint = "CP-99"', ["checkpoint", "CP-99"]),
        ("imaging_review", 'checkpoint = "CP-16"', 'checkpoint = "CP-04"', ["CP-04", "triggered_only"]),
        ("year_review", 'id = "year_review"', 'id = "yearly"', ["role", "yearly"]),
        ("OUTCOME-CP-09", 'checkpoint = "CP-09"', 'checkpoint = "CP-99"', ["CP-99"]),
        (
            "OUTCOME-CP-06",
            'fields = ["dxa_t_score", "dxa_date"]',
            'fields = ["dxa_t_score", "shoe_size"]',
            ["shoe_size"],
        ),
        ("OUTCOME-CP-06", 'required = "dxa_t_score"', 'required = "medication_started"', ["required"]),
        ("OUTCOME-CP-13", 'checkpoint = "CP-13"', 'checkpoint = "CP-06"', ["CP-06", "two outcomes"]),
        ("ESC-ROUTINE", 'tier = "routine"', 'tier = "critical"', ["tier", "critical"]),
        ("ESC-EMERGENCY", 'notify = "on_call"', 'notify = "janitor"', ["notify", "janitor"]),
        ("ESC-EMERGENCY", "after_minutes = 20", "after_minutes = 5", ["after_minutes", "5"]),
        ("ESC-URGENT", "after_minutes = 0,", "after_minutes = 15,", ["after_minutes", "15"]),
        ("extra_checkin", "days = 3", "days = 0", ["days", "0"]),
        ("extra_checkin", "days = 3", 'days = "three"', ["days", "wrong type"]),
        ("checkin_form", "hours = 2", "hours = 2\ndays = 1", ["days", "hours"]),
        ("CHECKIN", "invitations = 2", "invitations = -1", ["invitations"]),
        ("CHECKIN", '"CP-11", ', '"CP-11", "CP-99", ', ["CP-99"]),
        ("CHECKIN", "invitations = 2\n", "", ["invitations"]),
        ("SO-INFO", '"SO-4", ', '"SO-4", "SO-9", ', ["finding", "SO-9"]),
    ],
    ids=[
        "escalation-missing-source",
        "outcome-source-not-a-spec-key",
        "interval-source-neither-key-nor-design",
        "role-unknown-checkpoint",
        "imaging-role-not-triggered",
        "unknown-role",
        "outcome-unknown-checkpoint",
        "outcome-unknown-field",
        "outcome-required-not-its-field",
        "two-outcomes-for-one-checkpoint",
        "escalation-unknown-tier",
        "escalation-unknown-target",
        "escalation-minutes-decrease",
        "escalation-first-step-late",
        "interval-zero",
        "interval-not-a-number",
        "interval-two-units",
        "invitations-negative",
        "checkin-unknown-checkpoint",
        "invitations-missing",
        "second-opinion-unknown-finding",
    ],
)
def test_a_bad_new_entry_is_refused_with_an_error_naming_the_file_and_the_entry(tmp_path, entry_id, old, new, words):
    text = edit_entry(SHIPPED.read_text(encoding="utf-8"), entry_id, old, new)

    message = refusal(tmp_path, text)

    assert message.startswith("2026.1.toml ")
    assert {"year_review": "yearly"}.get(entry_id, entry_id) in message
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    ("entry_id", "words"),
    [("repeat_dxa", ["roles", "repeat_dxa"]), ("ESC-URGENT", ["escalation", "urgent"]), ("recent_dxa", ["recent_dxa"])],
)
def test_a_file_without_an_entry_the_code_asks_for_is_refused_naming_it(tmp_path, entry_id, words):
    message = refusal(tmp_path, drop_entry(SHIPPED.read_text(encoding="utf-8"), entry_id))

    assert message.startswith("2026.1.toml ")
    assert all(word in message for word in words), message


def test_a_file_without_second_opinion_information_is_refused_naming_the_section(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8")
    text = text[: text.index("[second_opinion_information]")]

    with pytest.raises(ProtocolError, match=r"2026\.1\.toml: missing 'second_opinion_information'"):
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
def test_every_planned_window_is_ordered_and_only_a_late_one_starts_before_the_procedure(facts, tier):
    """Spec §3: a window that closed before the procedure (an FLS clock of a fracture, or a repeat DXA
    of a medication started, long before it) keeps its dates from its anchor, late from the start (no
    clamp to one day); every other window starts on or after the procedure."""
    for item in plan(facts, tier, PROTOCOL):
        assert item.earliest <= item.target <= item.latest, item
        assert item.late == (item.latest < facts.procedure_date), item
        assert item.earliest >= facts.procedure_date or (item.late and item.anchor != "procedure"), item


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

    spec_codes = {code for code in codes if code.startswith("CP-")}
    expected = BASE_CODES - ({"CP-06"} if recent_dxa else set())
    expected |= {"CP-13"} if facts.medication_started_on else set()
    expected |= {"CP-14"} if facts.brace_prescribed else set()
    assert spec_codes == expected
    # The triggered imaging review (CP-16) is never planned; the HIGH tier's day-90 review has its own id.
    assert "CP-16" not in codes
    assert ("INT-HIGH-IMAGING" in codes) == (tier == "high")
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
