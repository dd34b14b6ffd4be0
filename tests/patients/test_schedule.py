"""The follow-up schedule of spec §3, built, re-planned and swept through the services.

Every expected window below is written out by hand from spec §3 and protocol 2026.1, as
(code, sequence, earliest day, target day, latest day) counted from the procedure (day 0).
"""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError

from patients.models import Checkpoint, CheckpointEvent, CheckpointState, Patient, RiskAssessment
from patients.services import (
    cancel_checkpoint,
    complete_checkpoint,
    refresh_procedure,
    replan,
    reschedule_checkpoint,
    sweep_checkpoint_states,
    update_patient,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
DAY0 = date(2026, 3, 2)

NO_RISK_PATIENT = {
    "bmd_lowest_t_score": Decimal("-1.0"),
    "dxa_date": DAY0 - timedelta(days=3 * 365),
    "on_osteoporosis_med": False,
    "regular_outdoor_activity": True,
    "bmi": Decimal("24.0"),
    "prior_vertebral_fractures": 0,
}
NO_RISK_LEVEL = {
    "level": "L4",
    "cement_leakage": False,
    "cement_distribution": "confluent",
    "intravertebral_cleft": False,
    "hounsfield_units": 150,
}

# Spec §3 with F = day -8: FLS windows open at max(F, day 0) and close at F+84, F+112, F+140.
STANDARD = [
    ("CP-01", 1, 1, 1, 3),
    ("CP-02", 1, 7, 10, 14),
    ("CP-03", 1, 12, 14, 18),
    ("CP-04", 1, 28, 42, 49),
    ("CP-05", 1, 0, 62, 76),
    ("CP-06", 1, 0, 62, 76),
    ("CP-07", 1, 0, 90, 104),
    ("CP-08", 1, 0, 90, 104),
    ("CP-09", 1, 76, 104, 132),
    ("CP-10", 1, 76, 90, 104),
    ("CP-11", 1, 168, 182, 196),
    ("CP-12", 1, 350, 365, 395),
    ("CP-15", 1, 28, 42, 49),
    ("CP-15", 2, 350, 365, 395),
]
HIGH_INTENSIFICATION = [
    ("INT-HIGH-PRO", 1, 3, 3, 5),
    ("INT-HIGH-PRO", 2, 7, 7, 9),
    ("INT-HIGH-PRO", 3, 10, 10, 12),
    ("INT-HIGH-PRO", 4, 14, 14, 16),
    ("INT-HIGH-PRO", 5, 21, 21, 23),
    ("INT-HIGH-PRO", 6, 28, 28, 30),
    ("INT-HIGH-PRO", 7, 35, 35, 37),
    ("INT-HIGH-PRO", 8, 42, 42, 44),
    ("INT-HIGH-PRO", 9, 49, 49, 51),
    ("INT-HIGH-PRO", 10, 56, 56, 58),
    ("INT-HIGH-PRO", 11, 63, 63, 65),
    ("INT-HIGH-PRO", 12, 70, 70, 72),
    ("INT-HIGH-PRO", 13, 77, 77, 79),
    ("INT-HIGH-PRO", 14, 84, 84, 86),
    ("INT-HIGH-VISIT", 1, 12, 14, 18),
    ("INT-HIGH-IMAGING", 1, 83, 90, 104),
    ("INT-HIGH-ADHERENCE", 1, 27, 30, 37),
    ("INT-HIGH-ADHERENCE", 2, 57, 60, 67),
    ("INT-HIGH-ADHERENCE", 3, 87, 90, 97),
    ("INT-HIGH-ADHERENCE", 4, 117, 120, 127),
    ("INT-HIGH-ADHERENCE", 5, 147, 150, 157),
    ("INT-HIGH-ADHERENCE", 6, 177, 180, 187),
]
ELEVATED_INTENSIFICATION = [
    ("INT-ELEVATED-PRO", 1, 7, 7, 10),
    ("INT-ELEVATED-PRO", 2, 14, 14, 17),
    ("INT-ELEVATED-PRO", 3, 21, 21, 24),
    ("INT-ELEVATED-PRO", 4, 28, 28, 31),
    ("INT-ELEVATED-PRO", 5, 35, 35, 38),
    ("INT-ELEVATED-PRO", 6, 42, 42, 45),
    ("INT-ELEVATED-ADHERENCE", 1, 57, 60, 67),
]
FLS_PRIORITY = {"CP-05", "CP-06", "CP-07", "CP-08", "CP-09"}


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def noon(n: int) -> datetime:
    return datetime.combine(day(n), time(12), tzinfo=LONDON)


def on_day(n: int):
    return time_machine.travel(noon(n), tick=False)


def sweep_on(n: int) -> dict[str, int]:
    with on_day(n):
        return sweep_checkpoint_states(now=noon(n))


def windows(procedure) -> list[tuple]:
    return sorted(
        (
            row.code,
            row.sequence,
            (row.window_start - DAY0).days,
            (row.target_date - DAY0).days,
            (row.window_end - DAY0).days,
        )
        for row in procedure.checkpoints.exclude(state=CheckpointState.CANCELLED)
    )


def cp(procedure, code: str, sequence: int = 1) -> Checkpoint:
    return procedure.checkpoints.exclude(state=CheckpointState.CANCELLED).get(code=code, sequence=sequence)


def rows_of(procedure) -> dict[int, dict]:
    return {row["id"]: row for row in Checkpoint.objects.filter(procedure=procedure).values()}


def current_assessment(procedure) -> RiskAssessment:
    return RiskAssessment.objects.get(procedure=procedure, is_current=True)


def birth_date_aged(age: int, on: date) -> date:
    return on.replace(year=on.year - age) - timedelta(days=10)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The staff personas are created per test; the production hasher would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def follow_up(make_patient, make_procedure):
    """A procedure done on DAY0 and recorded that day; no risk factor unless the test adds one."""

    def build(*, patient_fields=None, levels=None, fracture_days_before=8, **procedure_fields):
        with on_day(0):
            patient = make_patient(**(NO_RISK_PATIENT | (patient_fields or {})))
            fields = {
                "performed_on": DAY0,
                "fracture_diagnosed_on": None if fracture_days_before is None else day(-fracture_days_before),
                "posterior_fascia_oedema": False,
                "facet_joint_violation": False,
                "baseline_pain": 7,
            }
            return make_procedure(patient=patient, levels=levels or [NO_RISK_LEVEL], **(fields | procedure_fields))

    return build


@pytest.fixture
def elevated_follow_up(follow_up):
    """Cement leak at L1 (thoracolumbar junction): 2 fracture points; no DXA on record."""
    return follow_up(
        patient_fields={"bmd_lowest_t_score": None, "dxa_date": None},
        levels=[NO_RISK_LEVEL | {"level": "L1", "cement_leakage": True, "leak_site": "paravertebral"}],
    )


# --- The schedule of spec §3 --------------------------------------------------------------------


def test_standard_tier_patient_gets_exactly_the_spec_schedule(follow_up):
    procedure = follow_up()

    assessment = current_assessment(procedure)
    assert (assessment.tier, assessment.factors, assessment.missing) == ("standard", [], [])
    assert windows(procedure) == sorted(STANDARD)
    assert set(procedure.checkpoints.values_list("state", flat=True)) == {CheckpointState.SCHEDULED}
    assert not procedure.checkpoints.filter(priority=True).exists()
    assert not procedure.fracture_date_assumed


def test_high_tier_patient_gets_the_spec_schedule_plus_high_intensification(follow_up):
    procedure = follow_up(facet_joint_violation=True)

    assessment = current_assessment(procedure)
    assert assessment.tier == "high"
    assert [factor["id"] for factor in assessment.factors] == ["RISK-PAIN-FACET"]
    assert windows(procedure) == sorted(STANDARD + HIGH_INTENSIFICATION)
    assert set(procedure.checkpoints.filter(priority=True).values_list("code", flat=True)) == FLS_PRIORITY


def test_elevated_tier_patient_gets_the_spec_schedule_plus_elevated_intensification(elevated_follow_up):
    assert current_assessment(elevated_follow_up).tier == "elevated"
    assert windows(elevated_follow_up) == sorted(STANDARD + ELEVATED_INTENSIFICATION)


@pytest.mark.parametrize(
    ("procedure_fields", "schedule"),
    [({}, STANDARD), ({"facet_joint_violation": True}, STANDARD + HIGH_INTENSIFICATION)],
    ids=["standard", "high"],
)
def test_each_checkpoint_is_scheduled_then_due_then_missed_day_by_day_over_a_year(
    follow_up, procedure_fields, schedule
):
    procedure = follow_up(**procedure_fields)

    for n in range(0, 400):
        sweep_on(n)
        expected = {
            (code, sequence): "scheduled" if n < earliest else "due" if n <= latest else "missed"
            for code, sequence, earliest, _target, latest in schedule
        }
        states = {(row.code, row.sequence): row.state for row in procedure.checkpoints.all()}
        assert states == expected, f"day {n}"


def test_brace_adherence_is_planned_at_cp02_and_cp04_only_when_a_brace_is_prescribed(follow_up):
    braced = follow_up(brace_prescribed=True, brace_type="TLSO", brace_planned_weeks=6)
    unbraced = follow_up()

    assert [row for row in windows(braced) if row[0] == "CP-14"] == [("CP-14", 1, 7, 10, 14), ("CP-14", 2, 28, 42, 49)]
    assert windows(braced) == sorted(STANDARD + [("CP-14", 1, 7, 10, 14), ("CP-14", 2, 28, 42, 49)])
    assert not unbraced.checkpoints.filter(code="CP-14").exists()


@pytest.mark.parametrize(("dxa_days_before", "planned"), [(365, False), (700, False), (800, True), (None, True)])
def test_dxa_is_planned_only_when_none_was_done_in_the_last_two_years(follow_up, dxa_days_before, planned):
    dxa_date = None if dxa_days_before is None else day(-dxa_days_before)
    procedure = follow_up(patient_fields={"dxa_date": dxa_date})

    assert procedure.checkpoints.filter(code="CP-06").exists() is planned
    expected = STANDARD if planned else [row for row in STANDARD if row[0] != "CP-06"]
    assert windows(procedure) == sorted(expected)


def test_repeat_dxa_is_planned_from_the_medication_start_once_cp07_records_it(follow_up, clinician):
    procedure = follow_up()
    assert not procedure.checkpoints.filter(code="CP-13").exists()

    with on_day(50):
        complete_checkpoint(
            checkpoint=cp(procedure, "CP-07"),
            by=clinician,
            medication_started=True,
            medication_drug="alendronate",
            medication_started_on=day(45),
        )

    patient = Patient.objects.get(pk=procedure.patient_id)
    assert (patient.on_osteoporosis_med, patient.osteoporosis_drug, patient.osteoporosis_med_started_on) == (
        True,
        "alendronate",
        day(45),
    )
    assert windows(procedure) == sorted(STANDARD + [("CP-13", 1, 45 + 365, 45 + 365, 45 + 730)])
    repeat = cp(procedure, "CP-13")
    assert repeat.state == CheckpointState.SCHEDULED
    assert repeat.events.filter(kind=CheckpointEvent.Kind.PLANNED).count() == 1


@pytest.mark.hazard("HAZ-37")
def test_a_fracture_long_before_the_procedure_keeps_the_spec_windows_late_from_the_start(follow_up):
    """F = day -100: CP-05 and CP-06 (F+84 = day -16) closed before the procedure. They keep the
    spec's window (no one-day clamp), are marked for review with no patient reminder, and the sweep
    puts them on the coordinators' worklist as missed. CP-07…CP-09, still open, open on day 0."""
    procedure = follow_up(fracture_days_before=100)

    fls = [
        ("CP-05", 1, -100, -30, -16),
        ("CP-06", 1, -100, -30, -16),
        ("CP-07", 1, 0, 0, 12),
        ("CP-08", 1, 0, 0, 12),
        ("CP-09", 1, 0, 12, 40),
    ]
    assert windows(procedure) == sorted([row for row in STANDARD if row[0] not in FLS_PRIORITY] + fls)
    late = procedure.checkpoints.filter(needs_review=True)
    assert sorted(late.values_list("code", flat=True)) == ["CP-05", "CP-06"]
    assert not late.filter(next_reminder_at__isnull=False).exists()
    assert cp(procedure, "CP-08").next_reminder_at is not None  # still open: the patient is reminded
    assert not procedure.fracture_date_assumed


def test_without_a_fracture_date_the_fls_clocks_run_from_the_procedure_and_it_is_flagged(follow_up):
    procedure = follow_up(fracture_days_before=None)

    fls = [
        ("CP-05", 1, 0, 70, 84),
        ("CP-06", 1, 0, 70, 84),
        ("CP-07", 1, 0, 98, 112),
        ("CP-08", 1, 0, 98, 112),
        ("CP-09", 1, 84, 112, 140),
    ]
    assert windows(procedure) == sorted([row for row in STANDARD if row[0] not in FLS_PRIORITY] + fls)
    assert procedure.fracture_date_assumed


# --- Tier changes and re-planning -----------------------------------------------------------------


def standard_procedure_at_day_20(follow_up, by):
    """L1 (thoracolumbar junction): 1 fracture point, standard. CP-01 and CP-02 done, CP-03 missed."""
    procedure = follow_up(levels=[NO_RISK_LEVEL | {"level": "L1"}])
    sweep_on(1)
    with on_day(1):
        complete_checkpoint(checkpoint=cp(procedure, "CP-01"), by=by, pain_score=3)
    sweep_on(10)
    with on_day(10):
        complete_checkpoint(checkpoint=cp(procedure, "CP-02"), by=by, pain_score=2)
    sweep_on(20)
    return procedure


def make_high_at_day_20(procedure):
    """T-score -3.6 (2 points) and age 81 (1 point) on top of the TL junction: 4 fracture points."""
    with on_day(20):
        update_patient(
            patient=procedure.patient,
            bmd_lowest_t_score=Decimal("-3.6"),
            birth_date=birth_date_aged(81, day(20)),
            reason="DXA and birth date corrected",
        )


def test_a_tier_change_leaves_completed_missed_and_due_checkpoints_untouched(follow_up, coordinator):
    procedure = standard_procedure_at_day_20(follow_up, coordinator)
    assert current_assessment(procedure).tier == "standard"
    before = rows_of(procedure)
    assert cp(procedure, "CP-03").state == CheckpointState.MISSED

    make_high_at_day_20(procedure)

    assert current_assessment(procedure).tier == "high"
    after = rows_of(procedure)
    for pk, row in before.items():
        if row["state"] == CheckpointState.DUE:
            # A due FLS checkpoint may only gain the priority flag (spec §3: priority FLS referral).
            changed = {name for name in row if after[pk][name] != row[name]} - {"updated_at"}
            assert changed <= {"priority"}, f"{row['code']} #{row['sequence']} (due) was rewritten: {changed}"
        elif row["state"] != CheckpointState.SCHEDULED:
            assert after[pk] == row, f"{row['code']} #{row['sequence']} ({row['state']}) was rewritten"
    completed = {row["code"] for row in after.values() if row["state"] == CheckpointState.COMPLETED}
    assert completed == {"CP-01", "CP-02"}


def test_every_change_of_a_tier_replan_has_an_event_naming_the_tier_change(follow_up, coordinator):
    procedure = standard_procedure_at_day_20(follow_up, coordinator)
    before = rows_of(procedure)
    last_event = CheckpointEvent.objects.order_by("-id").values_list("id", flat=True).first()

    make_high_at_day_20(procedure)

    after = rows_of(procedure)
    new_events = list(CheckpointEvent.objects.filter(id__gt=last_event, checkpoint__procedure=procedure))
    assert new_events
    for event in new_events:
        assert "standard → high" in event.reason, event.reason
    changed = {pk for pk, row in after.items() if pk not in before or before[pk] != row}
    assert changed == {event.checkpoint_id for event in new_events}
    assert {after[pk]["code"] for pk in changed if pk not in before} >= {"INT-HIGH-IMAGING", "INT-HIGH-ADHERENCE"}
    fls_follow_up = cp(procedure, "CP-09")
    assert fls_follow_up.priority
    assert fls_follow_up.events.filter(kind=CheckpointEvent.Kind.REPLANNED, reason__contains="standard → high").exists()


def test_a_tier_change_adds_no_checkpoint_whose_window_has_already_closed(follow_up, coordinator):
    """Spec §3 intensification for a patient found high-risk on day 20: only what is still ahead."""
    procedure = standard_procedure_at_day_20(follow_up, coordinator)
    before = set(rows_of(procedure))

    make_high_at_day_20(procedure)

    added = sorted(
        (row.code, row.sequence, (row.window_end - DAY0).days) for row in procedure.checkpoints.exclude(pk__in=before)
    )
    assert [row for row in added if row[2] < 20] == []
    expected = [row for row in HIGH_INTENSIFICATION if row[4] >= 20]
    assert added == sorted((code, sequence, latest) for code, sequence, _e, _t, latest in expected)


def test_planning_again_after_a_tier_change_changes_nothing(follow_up, coordinator):
    procedure = standard_procedure_at_day_20(follow_up, coordinator)
    make_high_at_day_20(procedure)
    rows = rows_of(procedure)
    events, assessments = CheckpointEvent.objects.count(), RiskAssessment.objects.count()

    with on_day(20):
        replan(procedure=procedure, reason="planned again")
        refresh_procedure(procedure=procedure, reason="refreshed again")

    assert rows_of(procedure) == rows
    assert (CheckpointEvent.objects.count(), RiskAssessment.objects.count()) == (events, assessments)


def test_a_low_dxa_result_makes_the_tier_high_and_cancels_the_scheduled_elevated_check_ins(
    elevated_follow_up, clinician
):
    procedure = elevated_follow_up
    sweep_on(30)
    before = rows_of(procedure)

    with on_day(30):
        complete_checkpoint(
            checkpoint=cp(procedure, "CP-06"), by=clinician, dxa_t_score=Decimal("-3.6"), dxa_date=day(29)
        )

    patient = Patient.objects.get(pk=procedure.patient_id)
    assert (patient.bmd_lowest_t_score, patient.dxa_date) == (Decimal("-3.6"), day(29))
    assessment = current_assessment(procedure)
    assert (assessment.tier, assessment.fracture_points) == ("high", 4)
    assert "bmd_lowest_t_score" not in assessment.missing
    assert procedure.risk_assessments.count() == 2
    assert procedure.risk_assessments.filter(is_current=True).count() == 1

    states = {(row.code, row.sequence): row.state for row in procedure.checkpoints.filter(code__startswith="INT-ELE")}
    assert states == {
        ("INT-ELEVATED-PRO", 1): "missed",
        ("INT-ELEVATED-PRO", 2): "missed",
        ("INT-ELEVATED-PRO", 3): "missed",
        ("INT-ELEVATED-PRO", 4): "due",
        ("INT-ELEVATED-PRO", 5): "cancelled",
        ("INT-ELEVATED-PRO", 6): "cancelled",
        ("INT-ELEVATED-ADHERENCE", 1): "cancelled",
    }
    for row in procedure.checkpoints.filter(state=CheckpointState.CANCELLED):
        assert before[row.pk]["state"] == CheckpointState.SCHEDULED
        event = row.events.get(kind=CheckpointEvent.Kind.CANCELLED)
        assert "elevated → high" in event.reason
        assert row.next_reminder_at is None
    dxa = cp(procedure, "CP-06")
    assert (dxa.state, dxa.dxa_t_score, dxa.dxa_date) == ("completed", Decimal("-3.6"), day(29))


def test_a_dxa_result_that_fills_a_missing_fact_adds_an_assessment_but_no_replan(elevated_follow_up, clinician):
    procedure = elevated_follow_up
    assert "bmd_lowest_t_score" in current_assessment(procedure).missing
    planned = rows_of(procedure)

    with on_day(30):
        complete_checkpoint(
            checkpoint=cp(procedure, "CP-06"), by=clinician, dxa_t_score=Decimal("-1.5"), dxa_date=day(29)
        )

    assessment = current_assessment(procedure)
    assert (assessment.tier, assessment.fracture_points, assessment.missing) == ("elevated", 2, [])
    assert procedure.risk_assessments.count() == 2
    after = rows_of(procedure)
    assert {pk: row for pk, row in after.items() if row["code"] != "CP-06"} == {
        pk: row for pk, row in planned.items() if row["code"] != "CP-06"
    }


def test_completing_a_checkpoint_that_changes_no_risk_fact_adds_no_assessment(follow_up, clinician):
    procedure = follow_up()
    assessment = current_assessment(procedure)

    with on_day(2):
        complete_checkpoint(checkpoint=cp(procedure, "CP-01"), by=clinician, pain_score=2)

    assert list(procedure.risk_assessments.values_list("id", flat=True)) == [assessment.pk]
    assert current_assessment(procedure).pk == assessment.pk


@pytest.mark.parametrize(("pain", "tier"), [(4, "high"), (3, "elevated")])
def test_a_cleft_with_pain_4_at_day_14_makes_the_tier_high(follow_up, clinician, pain, tier):
    procedure = follow_up(levels=[NO_RISK_LEVEL | {"intravertebral_cleft": True}])
    assert current_assessment(procedure).tier == "elevated"

    with on_day(14):
        complete_checkpoint(checkpoint=cp(procedure, "CP-03"), by=clinician, pain_score=pain)

    assert current_assessment(procedure).tier == tier


# --- Completing, rescheduling and cancelling --------------------------------------------------------


def frozen_state(procedure) -> tuple:
    patient = Patient.objects.filter(pk=procedure.patient_id).values().get()
    return (rows_of(procedure), patient, CheckpointEvent.objects.count(), RiskAssessment.objects.count())


@pytest.mark.parametrize(
    ("code", "outcome", "field"),
    [
        ("CP-07", {}, "medication_started"),
        ("CP-07", {"medication_started": True}, "medication_drug"),
        ("CP-07", {"medication_started": True, "medication_drug": "alendronate"}, "medication_drug"),
        ("CP-07", {"medication_started": False}, "medication_not_started_reason"),
        ("CP-06", {}, "dxa_t_score"),
        ("CP-06", {"dxa_t_score": Decimal("-2.0")}, "dxa_date"),
        ("CP-06", {"dxa_t_score": Decimal("-2.0"), "dxa_date": day(11)}, "dxa_date"),
        ("CP-06", {"dxa_t_score": Decimal("-7.0"), "dxa_date": day(9)}, "dxa_t_score"),
        ("CP-03", {"pain_score": 11}, "pain_score"),
    ],
    ids=[
        "cp07-no-answer",
        "cp07-no-drug-or-date",
        "cp07-no-date",
        "cp07-no-reason",
        "dxa-missing",
        "dxa-without-date",
        "dxa-date-in-future",
        "dxa-out-of-range",
        "pain-out-of-range",
    ],
)
def test_an_incomplete_outcome_is_refused_by_field_and_changes_nothing(follow_up, clinician, code, outcome, field):
    procedure = follow_up()
    before = frozen_state(procedure)

    with on_day(10), pytest.raises(ValidationError) as excinfo:
        complete_checkpoint(checkpoint=cp(procedure, code), by=clinician, **outcome)

    assert field in excinfo.value.message_dict
    assert frozen_state(procedure) == before


def test_completing_a_completed_checkpoint_is_refused_and_keeps_the_first_outcome(follow_up, clinician):
    procedure = follow_up()
    with on_day(2):
        complete_checkpoint(checkpoint=cp(procedure, "CP-01"), by=clinician, pain_score=3)
    before = frozen_state(procedure)

    with on_day(3), pytest.raises(ValidationError) as excinfo:
        complete_checkpoint(checkpoint=cp(procedure, "CP-01"), by=clinician, pain_score=8)

    assert "state" in excinfo.value.message_dict
    assert frozen_state(procedure) == before
    assert cp(procedure, "CP-01").pain_score == 3


@pytest.mark.parametrize(
    ("target", "reason", "field"),
    [
        (day(30), "", "reason"),
        (day(30), "   ", "reason"),
        (day(9), "patient away", "target_date"),
        (day(-1), "patient away", "target_date"),
    ],
    ids=["no-reason", "blank-reason", "into-the-past", "before-the-procedure"],
)
def test_a_reschedule_without_reason_or_into_the_past_is_refused_and_changes_nothing(
    follow_up, coordinator, target, reason, field
):
    procedure = follow_up()
    before = frozen_state(procedure)

    with on_day(10), pytest.raises(ValidationError) as excinfo:
        reschedule_checkpoint(checkpoint=cp(procedure, "CP-04"), target_date=target, reason=reason, by=coordinator)

    assert field in excinfo.value.message_dict
    assert frozen_state(procedure) == before


def test_a_reschedule_to_a_day_already_past_in_the_patient_time_zone_is_refused(follow_up, coordinator):
    """20:00 UTC on 12 March is 09:00 on 13 March in Auckland: 12 March is yesterday for the patient."""
    procedure = follow_up(patient_fields={"time_zone": "Pacific/Auckland"})
    before = frozen_state(procedure)

    with time_machine.travel(datetime(2026, 3, 12, 20, tzinfo=UTC), tick=False), pytest.raises(ValidationError) as exc:
        reschedule_checkpoint(
            checkpoint=cp(procedure, "CP-04"), target_date=date(2026, 3, 12), reason="earlier slot", by=coordinator
        )

    assert "target_date" in exc.value.message_dict
    assert frozen_state(procedure) == before


def test_a_rescheduled_checkpoint_keeps_its_new_date_through_later_replans(follow_up, coordinator, clinician):
    procedure = follow_up()
    with on_day(10):
        reschedule_checkpoint(
            checkpoint=cp(procedure, "CP-04"), target_date=day(52), reason="surgeon on leave", by=coordinator
        )
    visit = cp(procedure, "CP-04")
    assert ((visit.window_start - DAY0).days, (visit.target_date - DAY0).days, (visit.window_end - DAY0).days) == (
        28,
        52,
        52,
    )
    assert visit.events.filter(kind=CheckpointEvent.Kind.RESCHEDULED, reason="surgeon on leave").count() == 1
    moved = rows_of(procedure)[visit.pk]

    with on_day(11):
        complete_checkpoint(checkpoint=cp(procedure, "CP-02"), by=clinician, pain_score=2)
        replan(procedure=procedure, reason="planned again")

    assert rows_of(procedure)[visit.pk] == moved


def test_a_cancel_without_reason_or_of_a_completed_checkpoint_is_refused(follow_up, coordinator, clinician):
    procedure = follow_up()
    with on_day(2):
        complete_checkpoint(checkpoint=cp(procedure, "CP-01"), by=clinician, pain_score=3)
    before = frozen_state(procedure)

    with on_day(3):
        with pytest.raises(ValidationError) as no_reason:
            cancel_checkpoint(checkpoint=cp(procedure, "CP-02"), reason=" ", by=coordinator)
        with pytest.raises(ValidationError) as completed:
            cancel_checkpoint(checkpoint=cp(procedure, "CP-01"), reason="duplicate", by=coordinator)

    assert "reason" in no_reason.value.message_dict
    assert "state" in completed.value.message_dict
    assert frozen_state(procedure) == before


def test_a_cancelled_checkpoint_stays_cancelled_when_the_schedule_is_replanned(follow_up, coordinator, clinician):
    procedure = follow_up()
    with on_day(2):
        cancel_checkpoint(
            checkpoint=cp(procedure, "CP-08"), reason="patient already in a physio programme", by=coordinator
        )
        complete_checkpoint(checkpoint=cp(procedure, "CP-01"), by=clinician, pain_score=2)

    physio = list(procedure.checkpoints.filter(code="CP-08").values_list("state", flat=True))
    assert physio == [CheckpointState.CANCELLED]


def test_withdrawing_a_patient_cancels_open_checkpoints_and_stops_their_reminders(follow_up, coordinator, clinician):
    procedure = follow_up()
    sweep_on(2)
    with on_day(2):
        complete_checkpoint(checkpoint=cp(procedure, "CP-01"), by=clinician, pain_score=2)
    open_ids = set(Checkpoint.objects.open().filter(procedure=procedure).values_list("id", flat=True))
    assert Checkpoint.objects.filter(pk__in=open_ids, next_reminder_at__isnull=False).exists()

    with on_day(3):
        update_patient(patient=procedure.patient, status="withdrawn", reason="patient moved away")

    assert not Checkpoint.objects.open().filter(procedure=procedure).exists()
    assert set(procedure.checkpoints.filter(state=CheckpointState.CANCELLED).values_list("id", flat=True)) == open_ids
    assert not procedure.checkpoints.filter(next_reminder_at__isnull=False).exists()
    assert cp(procedure, "CP-01").state == CheckpointState.COMPLETED
    for checkpoint in procedure.checkpoints.filter(pk__in=open_ids):
        assert checkpoint.events.get(kind=CheckpointEvent.Kind.CANCELLED).reason == "patient withdrawn"
    assert sweep_on(30) == {"due": 0, "missed": 0}


# --- State sweep ----------------------------------------------------------------------------------


def at_utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_sweep_opens_and_closes_windows_at_local_midnight_in_the_patient_time_zone(follow_up):
    """Auckland in March is UTC+13: CP-01 (days 1–3 from 2 March) opens 3 March 00:00 NZDT = 2 March
    11:00 UTC and closes 6 March 00:00 NZDT = 5 March 11:00 UTC. FLS checkpoints open on day 0."""
    procedure = follow_up(patient_fields={"time_zone": "Pacific/Auckland"})
    screen = cp(procedure, "CP-01")
    assert (screen.opens_at, screen.closes_at) == (at_utc(2026, 3, 2, 11), at_utc(2026, 3, 5, 11))

    def due_codes():
        return set(procedure.checkpoints.filter(state=CheckpointState.DUE).values_list("code", flat=True))

    assert sweep_checkpoint_states(now=at_utc(2026, 3, 2, 10, 59, 59)) == {"due": 4, "missed": 0}
    assert due_codes() == {"CP-05", "CP-06", "CP-07", "CP-08"}

    assert sweep_checkpoint_states(now=at_utc(2026, 3, 2, 11)) == {"due": 1, "missed": 0}
    assert due_codes() == {"CP-01", "CP-05", "CP-06", "CP-07", "CP-08"}
    assert sorted(cp(procedure, "CP-01").events.values_list("kind", flat=True)) == ["due", "planned"]
    assert cp(procedure, "CP-01").events.get(kind=CheckpointEvent.Kind.DUE).at == at_utc(2026, 3, 2, 11)
    events = CheckpointEvent.objects.count()
    assert sweep_checkpoint_states(now=at_utc(2026, 3, 2, 11)) == {"due": 0, "missed": 0}
    assert CheckpointEvent.objects.count() == events

    assert sweep_checkpoint_states(now=at_utc(2026, 3, 5, 10, 59, 59)) == {"due": 0, "missed": 0}
    assert cp(procedure, "CP-01").state == CheckpointState.DUE

    assert sweep_checkpoint_states(now=at_utc(2026, 3, 5, 11)) == {"due": 0, "missed": 1}
    screen = cp(procedure, "CP-01")
    assert screen.state == CheckpointState.MISSED
    assert screen.next_reminder_at is None
    assert screen.events.filter(kind=CheckpointEvent.Kind.MISSED, at=at_utc(2026, 3, 5, 11)).count() == 1
    events = CheckpointEvent.objects.count()
    assert sweep_checkpoint_states(now=at_utc(2026, 3, 5, 11)) == {"due": 0, "missed": 0}
    assert CheckpointEvent.objects.count() == events
