"""The red-flag and trend rules of the shipped protocol, evaluated as pure functions (no database)."""

import copy
import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.rules import TIER_ORDER, PainPoint, Report, evaluate, get_rules, highest_tier, parse_rules
from patients.protocol import ProtocolError, get_protocol

VERSION = "2026.1"
RULES = get_rules(VERSION)

# Spec §1, copied here so that a protocol file drifting from the spec fails this test.
SPEC_TIERS = {
    "RF-01": "emergency",
    "RF-02": "emergency",
    "RF-03": "emergency",
    "RF-04": "emergency",
    "RF-05": "urgent",
    "RF-06": "urgent",
    "RF-07": "urgent",
    "RF-08": "urgent",
    "RF-09": "urgent",
    "RF-10": "urgent",
}
RF_CODES = sorted(SPEC_TIERS)
SOURCE_KEY = re.compile(r"^(\[DESIGN\]|(S[01]|E([1-9]|1[0-9]|2[01]))\b)")


def report(day=1, pain=3, yes=(), **second_opinion) -> Report:
    return Report(
        day=day,
        pain_now=pain,
        red_flags=frozenset(yes),
        second_opinion={code.replace("_", "-"): answer for code, answer in second_opinion.items()},
    )


def findings(day=1, pain=3, yes=(), history=(), baseline=None, **second_opinion) -> list[tuple[str, str, str]]:
    found = evaluate(report(day, pain, yes, **second_opinion), list(history), RULES, baseline=baseline)
    return [(finding.code, finding.tier, finding.kind) for finding in found]


def codes(**kwargs) -> set[str]:
    return {code for code, _, _ in findings(**kwargs)}


# --- Answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", RF_CODES)
def test_each_red_flag_answered_yes_raises_an_alert_at_its_spec_tier(code):
    assert findings(yes=[code]) == [(code, SPEC_TIERS[code], "alert")]


def test_the_protocol_asks_exactly_the_spec_red_flags_at_the_spec_tiers():
    assert {flag.id: flag.tier for flag in RULES.red_flags} == SPEC_TIERS


@pytest.mark.parametrize(
    ("day", "pain", "history"),
    [
        (1, 6, []),
        (10, 4, [PainPoint(1, 6)]),
        (14, 3, [PainPoint(1, 6), PainPoint(10, 4)]),
        (42, 2, [PainPoint(1, 6), PainPoint(10, 4), PainPoint(14, 3)]),
        (90, 1, [PainPoint(1, 6), PainPoint(10, 4), PainPoint(14, 3), PainPoint(42, 2)]),
    ],
)
def test_the_expected_course_of_all_no_answers_and_easing_pain_gives_no_finding(day, pain, history):
    assert findings(day=day, pain=pain, history=history, baseline=7, SO_2="yes", SO_4="no") == []


def test_concerns_not_heard_opens_a_routine_review():
    assert findings(SO_2="no") == [("SO-2", "routine", "review")]


def test_another_procedure_advised_opens_a_routine_review():
    assert findings(SO_4="yes") == [("SO-4", "routine", "review")]


def test_concerns_heard_and_no_other_procedure_advised_open_nothing():
    assert findings(SO_2="yes", SO_4="no") == []


# --- RF-07 from the pain trend ------------------------------------------------------------------


def test_pain_up_two_points_since_the_last_report_raises_rf07():
    assert findings(day=20, pain=5, history=[PainPoint(10, 3)]) == [("RF-07", "urgent", "alert")]


def test_relief_then_a_rebound_of_two_from_the_best_score_raises_rf07():
    history = [PainPoint(1, 6), PainPoint(10, 2), PainPoint(20, 3)]  # +1 since the last, +2 from the best

    found = evaluate(report(day=30, pain=4), history, RULES)

    assert [(f.code, f.tier, f.kind) for f in found] == [("RF-07", "urgent", "alert")]
    assert found[0].evidence["trend"] == "rebound from best score"


@pytest.mark.parametrize("history", [[PainPoint(10, 3)], [PainPoint(1, 6), PainPoint(10, 3)]])
def test_pain_up_one_point_does_not_raise_rf07(history):
    assert findings(day=20, pain=4, history=history) == []


@pytest.mark.hazard("HAZ-23")
@pytest.mark.parametrize("history", [[PainPoint(1, 0), PainPoint(5, 2)], [PainPoint(1, 1), PainPoint(5, 3)]])
def test_a_stable_low_score_after_a_lower_best_is_not_rf07(history):
    """Spec v0.2 RF-07: the rebound branch needs NRS >= 4 and >= 2 above the best."""
    assert findings(day=12, pain=history[-1].pain_now, history=history) == []


@pytest.mark.hazard("HAZ-23")
def test_a_rebound_to_four_two_above_the_best_is_rf07():
    assert findings(day=30, pain=4, history=[PainPoint(1, 2), PainPoint(10, 3)]) == [("RF-07", "urgent", "alert")]


@pytest.mark.hazard("HAZ-20")
def test_a_fall_since_the_last_check_in_is_rf10_with_the_rule_source():
    fell = Report(day=20, pain_now=3, answers={"fell_since_last": True})

    [finding] = evaluate(fell, [], RULES)

    assert (finding.code, finding.tier, finding.kind) == ("RF-10", "urgent", "alert")
    assert finding.evidence["also"] == {"fell_since_last": "yes"}
    assert finding.evidence["also_source"] == RULES.red_flag("RF-10").also_source
    assert evaluate(Report(day=20, pain_now=3, answers={"fell_since_last": False}), [], RULES) == []


@pytest.mark.hazard("HAZ-21")
@pytest.mark.parametrize("answer", ["no", "unsure"])
def test_so2_fires_on_no_and_on_not_sure(answer):
    assert findings(SO_2=answer, SO_4="no") == [("SO-2", "routine", "review")]


def test_rf07_answered_yes_and_seen_in_the_trend_is_one_alert_not_two():
    assert findings(day=20, pain=6, yes=["RF-07"], history=[PainPoint(10, 2)]) == [("RF-07", "urgent", "alert")]


# --- PAIN_NOT_IMPROVING (SO-1) and the day-14 early warning -------------------------------------


def test_six_out_of_ten_from_a_baseline_of_seven_on_day_45_is_pain_not_improving():
    assert findings(day=45, pain=6, baseline=7) == [("PAIN_NOT_IMPROVING", "routine", "review")]


def test_eight_down_to_three_is_improvement():
    assert findings(day=45, pain=3, baseline=8) == []


def test_pain_not_improving_waits_until_day_42():
    assert findings(day=41, pain=6, baseline=7) == []
    assert findings(day=42, pain=6, baseline=7) == [("PAIN_NOT_IMPROVING", "routine", "review")]


@pytest.mark.parametrize(("baseline", "pain", "fires"), [(10, 8, True), (10, 7, False), (5, 4, True), (9, 4, False)])
def test_pain_not_improving_needs_two_points_and_thirty_percent(baseline, pain, fires):
    assert ("PAIN_NOT_IMPROVING" in codes(day=60, pain=pain, baseline=baseline)) is fires


def test_without_a_baseline_moderate_pain_on_two_reports_seven_days_apart_is_pain_not_improving():
    assert findings(day=49, pain=5, history=[PainPoint(42, 5)]) == [("PAIN_NOT_IMPROVING", "routine", "review")]


def test_without_a_baseline_moderate_pain_six_days_apart_is_not_yet_pain_not_improving():
    assert findings(day=48, pain=5, history=[PainPoint(42, 5)]) == []


def test_without_a_baseline_one_moderate_report_is_not_pain_not_improving():
    assert findings(day=49, pain=4, history=[PainPoint(42, 3)]) == []


@pytest.mark.parametrize(("day", "fires"), [(11, False), (12, True), (14, True), (18, True), (19, False)])
def test_moderate_pain_adds_a_checkin_only_between_day_12_and_18(day, fires):
    expected = [("PAIN_DAY14", "routine", "checkin")] if fires else []
    assert findings(day=day, pain=4) == expected


def test_mild_pain_at_day_14_adds_no_checkin():
    assert findings(day=14, pain=3) == []


# --- Properties ---------------------------------------------------------------------------------

answers = st.fixed_dictionaries(
    {
        "day": st.integers(0, 400),
        "pain": st.integers(0, 10),
        "yes": st.frozensets(st.sampled_from(RF_CODES)),
        "SO_2": st.sampled_from(["yes", "no", "unsure"]),
        "SO_4": st.sampled_from(["yes", "no", "unsure"]),
    }
)
histories = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 10)), max_size=6).map(
    lambda points: [PainPoint(day, pain) for day, pain in sorted(points)]
)
baselines = st.none() | st.integers(0, 10)


def _report(values: dict, **changes) -> Report:
    values = {**values, **changes}
    return report(values["day"], values["pain"], values["yes"], SO_2=values["SO_2"], SO_4=values["SO_4"])


def _tier_rank(found) -> int:
    tier = highest_tier(found)
    return TIER_ORDER[tier] if tier else 0


@given(values=answers, history=histories, baseline=baselines, added=st.sampled_from(RF_CODES))
def test_answering_one_more_red_flag_yes_never_removes_a_finding(values, history, baseline, added):
    history = [point for point in history if point.day <= values["day"]]
    before = evaluate(_report(values), history, RULES, baseline=baseline)
    after = evaluate(_report(values, yes=values["yes"] | {added}), history, RULES, baseline=baseline)

    assert {(f.code, f.tier) for f in before} <= {(f.code, f.tier) for f in after}
    assert added in {f.code for f in after}


@given(
    values=answers,
    history=histories,
    baseline=baselines,
    more_yes=st.frozensets(st.sampled_from(RF_CODES)),
    more_pain=st.integers(0, 10),
)
def test_the_highest_tier_never_falls_when_answers_get_worse(values, history, baseline, more_yes, more_pain):
    history = [point for point in history if point.day <= values["day"]]
    worse = {"yes": values["yes"] | more_yes, "pain": min(10, values["pain"] + more_pain)}

    before = evaluate(_report(values), history, RULES, baseline=baseline)
    after = evaluate(_report(values, **worse), history, RULES, baseline=baseline)

    assert _tier_rank(after) >= _tier_rank(before)


# --- The shipped protocol -----------------------------------------------------------------------


def _rule_sources() -> list[tuple[str, str]]:
    return (
        [(flag.id, flag.source) for flag in RULES.red_flags]
        + [(f"{flag.id} also", flag.also_source) for flag in RULES.red_flags if flag.also_when_yes]
        + [(opinion.id, opinion.source) for opinion in RULES.second_opinion]
        + [
            (f"[{section}]", getattr(RULES, section)["source"])
            for section in ("pain_rise", "pain_not_improving", "early_warning")
        ]
        + [("[checkin]", get_protocol(RULES.version).checkin.source)]
    )


@pytest.mark.parametrize(("rule", "source"), _rule_sources())
def test_every_rule_of_the_shipped_protocol_names_design_or_a_spec_source(rule, source):
    parts = [part.strip() for part in source.split(";")]
    assert parts and all(SOURCE_KEY.match(part) for part in parts), f"{rule}: {source!r}"


def test_the_shipped_protocol_has_both_patient_answered_second_opinion_triggers():
    assert {(so.id, so.answers, so.tier) for so in RULES.second_opinion} == {
        ("SO-2", ("no", "unsure"), "routine"),
        ("SO-4", ("yes",), "routine"),
    }


def _modified(change) -> object:
    protocol = get_protocol(VERSION)
    raw = copy.deepcopy(protocol.raw)
    change(raw)
    return dataclasses.replace(protocol, raw=raw)


def test_a_red_flag_with_an_unknown_tier_is_refused_naming_the_entry():
    def critical(raw):
        raw["red_flags"][4]["tier"] = "critical"

    with pytest.raises(ProtocolError, match=r"red_flags\[4\] \(RF-05\).*unknown tier 'critical'"):
        parse_rules(_modified(critical))


def test_a_duplicate_red_flag_id_is_refused_naming_the_id():
    def duplicate(raw):
        raw["red_flags"][3]["id"] = "RF-02"

    with pytest.raises(ProtocolError, match="duplicate red flag id 'RF-02'"):
        parse_rules(_modified(duplicate))


def test_a_protocol_without_the_wording_section_is_refused_naming_it():
    def unworded(raw):
        del raw["wording"]

    with pytest.raises(ProtocolError, match=r"protocol 2026\.1: missing 'wording'"):
        parse_rules(_modified(unworded))


def test_the_shipped_protocol_itself_parses_unchanged():
    assert parse_rules(_modified(lambda raw: None)) == RULES
