"""The two ways a state column changes under racing writers: `transition` (a conditional UPDATE whose
loser changes nothing) and `claimed_batches` (SKIP LOCKED batches, each committed on its own)."""

import threading
from contextlib import closing
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from patients.models import Checkpoint, CheckpointState
from patients.rows import claimed_batches, transition

SCHEDULED, DUE, CANCELLED = CheckpointState.SCHEDULED, CheckpointState.DUE, CheckpointState.CANCELLED


@pytest.fixture
def checkpoints(make_procedure):
    """The planned checkpoints of one procedure, all scheduled and last changed an hour ago."""
    procedure = make_procedure(performed_on=timezone.localdate() - timedelta(days=1))
    rows = Checkpoint.objects.filter(procedure=procedure)
    rows.update(state=SCHEDULED, updated_at=timezone.now() - timedelta(hours=1))
    return rows.order_by("id")


def in_other_connection(read):
    """What `read()` returns on a connection of its own, i.e. what another process sees committed."""
    result = []

    def run():
        try:
            result.append(read())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result[0]


def lock_without_waiting() -> int:
    """How many checkpoints this connection can lock at once; raises if another one holds a lock."""
    with transaction.atomic():
        return len(Checkpoint.objects.select_for_update(nowait=True))


@pytest.mark.django_db
def test_transition_moves_only_rows_in_the_given_states_and_stamps_updated_at(checkpoints):
    first, *rest = checkpoints
    transition(Checkpoint.objects.filter(pk=first.pk), SCHEDULED, CANCELLED)
    before = timezone.now()

    moved = transition(checkpoints, [SCHEDULED], DUE, reminders_sent=2)

    assert moved == len(rest)
    first.refresh_from_db()
    assert first.state == CANCELLED and first.updated_at < before and first.reminders_sent == 0
    for row in Checkpoint.objects.filter(pk__in=[row.pk for row in rest]):
        assert (row.state, row.reminders_sent) == (DUE, 2)
        assert row.updated_at >= before


@pytest.mark.django_db
def test_a_writer_that_loses_the_race_gets_zero_and_changes_nothing(checkpoints):
    row = checkpoints.first()
    same_row = Checkpoint.objects.filter(pk=row.pk)

    won = transition(same_row, (SCHEDULED, DUE), CANCELLED)
    changed_at = same_row.get().updated_at
    lost = transition(same_row, (SCHEDULED, DUE), DUE, reminders_sent=5)

    assert (won, lost) == (1, 0)
    row.refresh_from_db()
    assert (row.state, row.reminders_sent, row.updated_at) == (CANCELLED, 0, changed_at)


@pytest.mark.django_db
def test_transition_keeps_an_updated_at_the_caller_gives(checkpoints):
    moment = timezone.now() - timedelta(days=3)

    transition(checkpoints, SCHEDULED, DUE, updated_at=moment)

    assert set(checkpoints.values_list("updated_at", flat=True)) == {moment}


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_when_the_loop_asks_for_the_next(checkpoints):
    ids = list(checkpoints.values_list("id", flat=True))
    seen_committed = []

    for batch in claimed_batches(checkpoints.filter(state=SCHEDULED), 2):
        seen_committed.append(in_other_connection(lambda: Checkpoint.objects.filter(state=DUE).count()))
        transition(Checkpoint.objects.filter(pk__in=[row.pk for row in batch]), SCHEDULED, DUE)

    assert seen_committed == list(range(0, len(ids), 2))
    assert in_other_connection(lambda: Checkpoint.objects.filter(state=DUE).count()) == len(ids)
    assert not connection.in_atomic_block


@pytest.mark.django_db(transaction=True)
def test_an_exception_in_the_loop_body_rolls_back_that_batch_only(checkpoints):
    total = checkpoints.count()

    with pytest.raises(RuntimeError):
        for number, batch in enumerate(claimed_batches(checkpoints.filter(state=SCHEDULED), 3)):
            transition(Checkpoint.objects.filter(pk__in=[row.pk for row in batch]), SCHEDULED, DUE)
            if number == 1:
                raise RuntimeError("the second batch fails half-way")

    assert not connection.in_atomic_block
    assert in_other_connection(lambda: Checkpoint.objects.filter(state=DUE).count()) == 3
    assert Checkpoint.objects.filter(state=SCHEDULED).count() == total - 3


@pytest.mark.django_db(transaction=True)
def test_a_generator_kept_in_a_variable_rolls_back_at_once_when_wrapped_in_closing(checkpoints):
    def sweep():
        with closing(claimed_batches(checkpoints.filter(state=SCHEDULED), 3)) as batches:
            for batch in batches:
                transition(Checkpoint.objects.filter(pk__in=[row.pk for row in batch]), SCHEDULED, DUE)
                raise RuntimeError("the first batch fails")

    try:
        sweep()
    except RuntimeError:
        # The traceback still holds `batches`, yet the failed batch's transaction is over.
        assert not connection.in_atomic_block
        assert in_other_connection(lock_without_waiting) == checkpoints.count()

    assert not Checkpoint.objects.filter(state=DUE).exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claimers_get_disjoint_rows(checkpoints):
    ids = set(checkpoints.values_list("id", flat=True))
    size = -(-len(ids) // 2)
    both_hold_a_batch = threading.Barrier(2, timeout=20)
    claimed: dict[str, set[int]] = {"a": set(), "b": set()}
    errors = []

    def claimer(name):
        try:
            for number, batch in enumerate(claimed_batches(Checkpoint.objects.filter(state=SCHEDULED), size)):
                claimed[name].update(row.pk for row in batch)
                if number == 0:
                    both_hold_a_batch.wait()  # the other claimer claims while this batch is locked
                transition(Checkpoint.objects.filter(pk__in=[row.pk for row in batch]), SCHEDULED, DUE)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert claimed["a"] and claimed["b"]
    assert not claimed["a"] & claimed["b"]
    assert claimed["a"] | claimed["b"] == ids
    assert Checkpoint.objects.filter(state=DUE).count() == len(ids)


@pytest.mark.django_db
def test_each_planned_checkpoint_has_its_planned_event_and_deleting_them_through_the_orm_leaves_no_event(
    make_patient,
):
    """Checkpoint events carry no database constraint (patients/models/checkpoint.py): the writer
    gives every checkpoint it plans its event, and a deletion, which only the ORM makes, takes the
    events with it."""
    from patients.models import CheckpointEvent
    from patients.services import record_procedure, schedule_procedures
    from tests.builders import procedure_fields

    procedures = [
        record_procedure(patient=make_patient(), levels=[{"level": "L1"}], schedule=False, **procedure_fields())
        for _ in range(3)
    ]
    planned = schedule_procedures(procedure_ids=[procedure.pk for procedure in procedures])

    events = CheckpointEvent.objects.filter(kind=CheckpointEvent.Kind.PLANNED)
    checkpoints = Checkpoint.objects.filter(procedure__in=procedures)
    assert planned == checkpoints.count() > 0
    assert sorted(events.values_list("checkpoint_id", flat=True)) == sorted(checkpoints.values_list("id", flat=True))

    procedures[0].patient.delete()
    assert not CheckpointEvent.objects.exclude(checkpoint_id__in=Checkpoint.objects.values("id")).exists()
    assert events.count() == Checkpoint.objects.filter(procedure__in=procedures[1:]).count()
