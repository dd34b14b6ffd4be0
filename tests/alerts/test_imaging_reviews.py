"""Imaging reviews (spec v0.2 §3 CP-16): a triggered review always has its own row, due within 14 days
of the trigger; the HIGH tier's planned day-90 review has its own id; neither stands in for the other."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from alerts.reports import submit_report
from patients.models import Checkpoint, CheckpointState
from patients.services import current_tier, refresh_procedure

pytestmark = pytest.mark.django_db

PLANNED = "INT-HIGH-IMAGING"
TRIGGERED = "CP-16"


def days_ago(days):
    return timezone.localdate() - timedelta(days=days)


def local_today(procedure):
    return timezone.localdate(timezone=ZoneInfo(procedure.patient.time_zone))


def reviews(procedure, code):
    return list(Checkpoint.objects.filter(procedure=procedure, code=code).order_by("id"))


@pytest.mark.hazard("HAZ-24")
def test_rf06_on_day_10_of_a_high_tier_patient_gets_its_own_review_within_14_days_beside_the_day_90_one(
    make_procedure,
):
    procedure = make_procedure(performed_on=days_ago(10), facet_joint_violation=True)  # HIGH: pain points 2
    [planned] = reviews(procedure, PLANNED)
    assert current_tier(procedure) == "high" and planned.state == CheckpointState.SCHEDULED
    assert planned.target_date == procedure.performed_on + timedelta(days=90)

    submit_report(procedure=procedure, source="phone", red_flags=["RF-06"])

    [review] = reviews(procedure, TRIGGERED)
    assert review.triggered and review.is_open
    assert review.window_end <= local_today(procedure) + timedelta(days=14)
    planned.refresh_from_db()
    assert planned.state == CheckpointState.SCHEDULED and not planned.triggered  # the planned one stays too


@pytest.mark.hazard("HAZ-24")
def test_an_open_triggered_review_due_later_than_14_days_from_a_new_trigger_does_not_stand_in_for_it(
    make_procedure,
):
    procedure = make_procedure(performed_on=days_ago(20), fracture_diagnosed_on=days_ago(25))
    submit_report(procedure=procedure, source="api", red_flags=["RF-09"])
    [first] = reviews(procedure, TRIGGERED)
    # Staff moved the first review out to day 40 from now: a new trigger needs one within 14 days.
    Checkpoint.objects.filter(pk=first.pk).update(window_end=local_today(procedure) + timedelta(days=40))

    submit_report(procedure=procedure, source="api", red_flags=["RF-06"])

    first_again, second = reviews(procedure, TRIGGERED)
    assert first_again.pk == first.pk and second.triggered
    assert second.window_end <= local_today(procedure) + timedelta(days=14)
    # A repeat within that window is the same review, not a third.
    submit_report(procedure=procedure, source="api", red_flags=["RF-07"])
    assert len(reviews(procedure, TRIGGERED)) == 2


@pytest.mark.hazard("HAZ-25")
def test_a_patient_who_becomes_high_after_a_triggered_review_still_gets_the_planned_day_90_review(make_procedure):
    procedure = make_procedure(performed_on=days_ago(10))
    assert current_tier(procedure) == "standard"
    submit_report(procedure=procedure, source="form", red_flags=["RF-06"])
    [triggered] = reviews(procedure, TRIGGERED)

    procedure.facet_joint_violation = True  # post-operative CT read late: HIGH
    procedure.save()
    refresh_procedure(procedure=procedure, reason="procedure changed in the admin")

    assert current_tier(procedure) == "high"
    [planned] = reviews(procedure, PLANNED)
    assert planned.target_date == procedure.performed_on + timedelta(days=90) and not planned.triggered
    triggered.refresh_from_db()
    assert triggered.is_open


@pytest.mark.hazard("HAZ-26")
def test_pain_not_improving_creates_a_triggered_imaging_review(make_procedure):
    procedure = make_procedure(performed_on=days_ago(45), fracture_diagnosed_on=days_ago(50), baseline_pain=7)

    report = submit_report(procedure=procedure, source="api", pain_now=6)

    assert "PAIN_NOT_IMPROVING" in {finding["code"] for finding in report.findings}
    [review] = reviews(procedure, TRIGGERED)
    assert review.triggered and review.window_end <= local_today(procedure) + timedelta(days=14)
