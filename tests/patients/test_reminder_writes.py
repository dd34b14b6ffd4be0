"""What the reminder sweep writes into a checkpoint goes through `services.checkpoints`: one UPDATE per
shared outcome, and a "due" event for each checkpoint its first reminder made due."""

from datetime import timedelta

import pytest
from django.utils import timezone

from patients import audit
from patients.models import Checkpoint, CheckpointEvent, CheckpointState
from patients.services import record_first_reminders, record_reminder_outcome

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduled(make_procedure):
    procedure = make_procedure(performed_on=timezone.localdate() - timedelta(days=1))
    return Checkpoint.objects.filter(procedure=procedure, state=CheckpointState.SCHEDULED).order_by("id")


def test_a_sent_reminder_counts_moves_the_next_one_and_makes_the_checkpoint_due(scheduled):
    first, second, *_ = scheduled
    now = timezone.now()
    later = now + timedelta(days=3)

    changed = record_reminder_outcome(
        checkpoint_ids=[first.pk, second.pk],
        next_reminder_at=later,
        reminder_blocked="",
        state=CheckpointState.DUE,
        counted=True,
        now=now,
    )

    assert changed == 2
    for row in Checkpoint.objects.filter(pk__in=[first.pk, second.pk]):
        assert (row.state, row.reminders_sent, row.next_reminder_at, row.updated_at) == ("due", 1, later, now)


def test_a_blocked_reminder_stops_without_counting_and_a_closed_checkpoint_is_left_alone(scheduled):
    open_row, closed_row, *_ = scheduled
    Checkpoint.objects.filter(pk=closed_row.pk).update(state=CheckpointState.COMPLETED)
    now = timezone.now()

    changed = record_reminder_outcome(
        checkpoint_ids=[open_row.pk, closed_row.pk],
        next_reminder_at=None,
        reminder_blocked="no e-mail consent",
        state=CheckpointState.SCHEDULED,
        counted=False,
        now=now,
    )

    assert changed == 1
    open_row.refresh_from_db()
    closed_row.refresh_from_db()
    assert (open_row.state, open_row.reminders_sent, open_row.next_reminder_at) == ("scheduled", 0, None)
    assert open_row.reminder_blocked == "no e-mail consent"
    assert (closed_row.state, closed_row.reminder_blocked) == ("completed", "")


def test_first_reminders_record_one_due_event_each_with_the_audit_context(scheduled, clinic):
    from patients.models import ApiClient

    ehr = ApiClient.objects.create(name="EHR", scopes=["read"], token_hash="b" * 64, token_prefix="kf_bbbb")
    ids = list(scheduled.values_list("id", flat=True)[:3])
    now = timezone.now()

    with audit.acting("task", ehr.pk):
        record_first_reminders(checkpoint_ids=ids, now=now)
    record_first_reminders(checkpoint_ids=[], now=now)

    events = CheckpointEvent.objects.filter(kind=CheckpointEvent.Kind.DUE)
    assert sorted(events.values_list("checkpoint_id", flat=True)) == sorted(ids)
    assert {(e.at, e.reason, e.source, e.api_client_id, e.by_id) for e in events} == {
        (now, "first reminder", "task", ehr.pk, None)
    }
    assert all(event.data == {} for event in events)
