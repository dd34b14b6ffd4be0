"""Planning many procedures at once gives exactly what planning them one by one gives."""

from datetime import timedelta

import pytest
from django.utils import timezone

from patients.models import Checkpoint, CheckpointEvent, RiskAssessment
from patients.services import record_procedure, schedule_procedure, schedule_procedures

pytestmark = pytest.mark.django_db

FIELDS = [
    "code",
    "sequence",
    "window_start",
    "target_date",
    "window_end",
    "due_at",
    "opens_at",
    "closes_at",
    "audience",
    "priority",
    "next_reminder_at",
    "protocol_version",
    "state",
    "source",
]


def shape(procedure):
    return sorted(tuple(row[f] for f in FIELDS) for row in Checkpoint.objects.filter(procedure=procedure).values())


@pytest.mark.parametrize(
    "levels", [[{"level": "L3"}], [{"level": "T12", "intravertebral_cleft": True, "cement_distribution": "separated"}]]
)
def test_batch_planning_equals_one_by_one_planning_and_is_idempotent(make_patient, levels):
    today = timezone.localdate()
    fields = {
        "kind": "kyphoplasty",
        "performed_on": today - timedelta(days=3),
        "fracture_diagnosed_on": today - timedelta(days=20),
        "facet_joint_violation": True,
    }
    single = record_procedure(patient=make_patient(), levels=levels, schedule=False, **fields)
    batch = record_procedure(patient=make_patient(), levels=levels, schedule=False, **fields)

    schedule_procedure(procedure=single)
    planned = schedule_procedures(procedure_ids=[batch.pk])
    again = schedule_procedures(procedure_ids=[batch.pk, single.pk])

    assert planned == Checkpoint.objects.filter(procedure=batch).count() > 10
    assert again == 0
    assert shape(single) == shape(batch)
    one, many = (RiskAssessment.objects.get(procedure=p, is_current=True) for p in (single, batch))
    assert (one.tier, one.pain_points, one.fracture_points, one.factors, one.missing) == (
        many.tier,
        many.pain_points,
        many.fracture_points,
        many.factors,
        many.missing,
    )


def planned_events(procedure):
    return sorted(
        (event.checkpoint.code, event.checkpoint.sequence, event.kind, event.reason, event.data, event.by_id)
        for event in CheckpointEvent.objects.filter(checkpoint__procedure=procedure).select_related("checkpoint")
    )


def test_batch_planning_writes_one_planned_event_per_checkpoint_as_replan_does(make_patient):
    today = timezone.localdate()
    fields = {"kind": "vertebroplasty", "performed_on": today - timedelta(days=2), "brace_prescribed": True}
    levels = [{"level": "L1", "cement_leakage": True, "leak_site": "venous"}]
    single = record_procedure(patient=make_patient(), levels=levels, schedule=False, **fields)
    batch = record_procedure(patient=make_patient(), levels=levels, schedule=False, **fields)

    schedule_procedure(procedure=single)  # plans through replan
    schedule_procedures(procedure_ids=[batch.pk])

    checkpoint_ids = sorted(Checkpoint.objects.filter(procedure=batch).values_list("id", flat=True))
    planned = CheckpointEvent.objects.filter(checkpoint__procedure=batch, kind=CheckpointEvent.Kind.PLANNED)
    assert sorted(planned.values_list("checkpoint_id", flat=True)) == checkpoint_ids
    assert planned_events(batch) == planned_events(single)
    assert {event[3] for event in planned_events(batch)} == {
        f"tier none → {batch.risk_assessments.get().tier}: procedure recorded"
    }
