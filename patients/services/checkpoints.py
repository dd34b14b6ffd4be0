"""The one writer of checkpoint state: every change of a Checkpoint row's state, schedule or
reminders, each with the CheckpointEvent that records it (planned, due, completed, missed,
rescheduled, cancelled, replanned).

State changes are conditional UPDATEs (`rows.transition`): a caller that loses a race changes
nothing. Sweeps claim their rows with SKIP LOCKED (`rows.claimed_batches`). What a change means
for the risk or the rest of the plan is decided by the callers (`schedule.py`, `outcomes.py`,
the alerts app's reminder sweep); nothing here re-assesses or re-plans.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import F
from django.utils import timezone

from patients import audit

from .. import protocol as protocol_rules
from ..models import OPEN_STATES, Checkpoint, CheckpointEvent, CheckpointState, Patient, Procedure
from ..rows import claimed_batches, copy_rows, new_ids, transition
from .conflicts import StateConflict
from .moments import planned_values, reminder_time, window_moments
from .risk import procedure_protocol

Kind = CheckpointEvent.Kind

# Staff may still act on a missed checkpoint: complete it late, give it a new date, or cancel it.
ACTIONABLE_STATES = (*OPEN_STATES, CheckpointState.MISSED)


# --- Events written many at once ----------------------------------------------------------------


def _add_events(checkpoint_ids: Sequence[int], *, kind: str, at: datetime, reason: str) -> None:
    """One CheckpointEvent per checkpoint, all alike and stamped with the current audit source and
    API client, in one INSERT … SELECT FROM unnest: sweeps and the bulk planner write thousands."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO patients_checkpointevent (checkpoint_id, kind, at, reason, data, source, api_client_id)"
            " SELECT t.id, %s, %s, %s, '{}'::jsonb, %s, %s FROM unnest(%s::bigint[]) AS t(id)",
            [kind, at, reason[:300], audit.current_source(), audit.current_client_id(), list(checkpoint_ids)],
        )


# --- Planning and re-planning ------------------------------------------------------------------


def plan_checkpoints(*, planned: Sequence[tuple[Mapping[str, Any], str]]) -> list[int]:
    """Create planned Checkpoint rows, each given as (field values, reason), with a "planned"
    CheckpointEvent carrying that reason for each. Returns the new checkpoints' ids.

    The ids are drawn from the table's sequence first, so that the checkpoints are written with one
    COPY and their events with one INSERT per reason, nothing read back: an import plans tens of
    thousands at once.
    """
    if not planned:
        return []
    now = timezone.now()
    ids = new_ids(Checkpoint, len(planned))
    copy_rows(Checkpoint, ({**values, "id": pk} for pk, (values, _) in zip(ids, planned, strict=True)), with_pk=True)
    by_reason: dict[str, list[int]] = defaultdict(list)
    for pk, (_, reason) in zip(ids, planned, strict=True):
        by_reason[reason].append(pk)
    for reason, checkpoint_ids in by_reason.items():
        _add_events(checkpoint_ids, kind=Kind.PLANNED, at=now, reason=reason)
    return ids


def move_planned(*, moves: Iterable[tuple[Checkpoint, dict[str, Any], dict[str, Any]]], reason: str) -> None:
    """Re-plan open checkpoints: each move is (checkpoint, new field values, event data); every
    checkpoint gets its new values and a "replanned" CheckpointEvent carrying `reason`. The caller
    holds the rows locked, and moves no state."""
    now = timezone.now()
    events = []
    for checkpoint, changes, data in moves:
        Checkpoint.objects.filter(pk=checkpoint.pk).update(**changes, updated_at=now)
        events.append(CheckpointEvent(checkpoint=checkpoint, kind=Kind.REPLANNED, at=now, reason=reason, data=data))
    CheckpointEvent.objects.bulk_create(events)


# --- One checkpoint at a time -------------------------------------------------------------------


def _move(
    checkpoint: Checkpoint,
    state: str,
    *,
    kind: str,
    reason: str = "",
    by=None,
    from_states: Iterable[str] = OPEN_STATES,
    **fields: Any,
) -> bool:
    """Move a checkpoint in `from_states` to `state` and record the event; False if another writer
    got there first (then nothing is written). A closed checkpoint is reminded no more."""
    now = timezone.now()
    if state not in OPEN_STATES:
        fields.setdefault("next_reminder_at", None)
    moved = transition(Checkpoint.objects.filter(pk=checkpoint.pk), from_states, state, updated_at=now, **fields)
    if moved:
        CheckpointEvent.objects.create(checkpoint=checkpoint, kind=kind, at=now, by=by, reason=reason[:300])
        checkpoint.refresh_from_db()
    return bool(moved)


def not_open(checkpoint: Checkpoint) -> StateConflict:
    checkpoint.refresh_from_db(fields=["state"])  # the state that won the race, not the one read before it
    return StateConflict(
        f"Checkpoint {checkpoint.code} is {checkpoint.state}; it can no longer change.", state=checkpoint.state
    )


def mark_completed(*, checkpoint: Checkpoint, by=None, outcome: Mapping[str, Any]) -> bool:
    """Complete an open or missed checkpoint with its (validated) outcome fields and a "completed"
    event; its reminders stop. False if it was no longer open or missed."""
    late = checkpoint.state == CheckpointState.MISSED
    return _move(
        checkpoint,
        CheckpointState.COMPLETED,
        kind=Kind.COMPLETED,
        by=by,
        reason="completed after its window" if late else "completed",
        from_states=ACTIONABLE_STATES,
        completed_at=timezone.now(),
        completed_by=by,
        **outcome,
    )


def mark_cancelled(*, checkpoint: Checkpoint, reason: str, by=None) -> bool:
    """Cancel an open checkpoint (the plan dropped it, or follow-up stopped) with a "cancelled" event."""
    return _move(checkpoint, CheckpointState.CANCELLED, kind=Kind.CANCELLED, by=by, reason=reason)


@transaction.atomic
def reschedule_checkpoint(*, checkpoint: Checkpoint, target_date: date, reason: str, by=None) -> Checkpoint:
    """Move an open or missed checkpoint's target (widening its window to include it); it is open
    again, and re-plans leave it alone."""
    if not reason.strip():
        raise ValidationError({"reason": ["Give the reason for the new date."]})
    if target_date < checkpoint.procedure.performed_on:
        raise ValidationError({"target_date": ["The new date is before the procedure."]})
    patient = checkpoint.procedure.patient
    if target_date < timezone.localdate(timezone=ZoneInfo(patient.time_zone)):
        raise ValidationError({"target_date": ["The new date is in the past (in the patient's time zone)."]})
    at = reminder_time(patient.clinic, procedure_protocol(checkpoint.procedure))
    moments = window_moments(
        min(checkpoint.window_start, target_date),
        target_date,
        max(checkpoint.window_end, target_date),
        zone=patient.time_zone,
        at=at,
    )
    reminds = checkpoint.audience != "coordinator_task" and checkpoint.reminder_max
    if not _move(
        checkpoint,
        CheckpointState.DUE if moments["opens_at"] <= timezone.now() else CheckpointState.SCHEDULED,
        kind=Kind.RESCHEDULED,
        by=by,
        reason=reason,
        from_states=ACTIONABLE_STATES,
        rescheduled_at=timezone.now(),
        next_reminder_at=moments["due_at"] if reminds else None,
        reminders_sent=0,
        **moments,
    ):
        raise not_open(checkpoint)
    return checkpoint


@transaction.atomic
def book_appointment(*, checkpoint: Checkpoint, appointment_at: datetime, by=None) -> Checkpoint:
    """Record the booked date and time of an open checkpoint's appointment (a visit or a scan): its
    reminders from now on carry an .ics for that moment. Without one, no reminder has an .ics."""
    if checkpoint.audience == "coordinator_task":
        raise ValidationError({"appointment_at": ["This checkpoint is a task for staff, not an appointment."]})
    if appointment_at <= timezone.now():
        raise ValidationError({"appointment_at": ["The appointment is in the past."]})
    zone = ZoneInfo(checkpoint.procedure.patient.time_zone)
    if checkpoint.state not in OPEN_STATES or not _move(
        checkpoint,
        checkpoint.state,
        kind=Kind.BOOKED,
        by=by,
        reason=f"appointment booked for {timezone.localtime(appointment_at, zone):%Y-%m-%d %H:%M}",
        from_states=[checkpoint.state],
        appointment_at=appointment_at,
    ):
        raise not_open(checkpoint)
    return checkpoint


@transaction.atomic
def cancel_checkpoint(*, checkpoint: Checkpoint, reason: str, by=None) -> Checkpoint:
    """Cancel an open or missed checkpoint; its reminders stop at once."""
    if not reason.strip():
        raise ValidationError({"reason": ["Give the reason for cancelling."]})
    if not _move(
        checkpoint,
        CheckpointState.CANCELLED,
        kind=Kind.CANCELLED,
        by=by,
        reason=reason,
        from_states=ACTIONABLE_STATES,
        cancelled_by_staff=True,
    ):
        raise not_open(checkpoint)
    return checkpoint


@transaction.atomic
def trigger_checkpoint(*, procedure: Procedure, code: str, reason: str) -> Checkpoint:
    """Plan a triggered checkpoint (CP-16 imaging review) with its own window from today (the
    patient's local date). Only an open *triggered* one due within that same window stands in for
    it; a planned review (another code, another day) never does (spec v0.2 §3 CP-16). Staff arrange
    it, so the patient gets no reminder."""
    rules = procedure_protocol(procedure)
    rule = rules.checkpoint(code)
    today = timezone.localdate(timezone=ZoneInfo(procedure.patient.time_zone))
    existing = (
        procedure.checkpoints.open()
        .filter(code=code, triggered=True, window_end__lte=today + timedelta(days=rule.latest))
        .first()
    )
    if existing:
        return existing
    item = protocol_rules.PlannedCheckpoint(
        code=code,
        sequence=procedure.checkpoints.filter(code=code).count() + 1,
        title=rule.title,
        audience=rule.audience,
        anchor="trigger",
        earliest=today + timedelta(days=rule.earliest),
        target=today + timedelta(days=rule.target),
        latest=today + timedelta(days=rule.latest),
        source=rule.source,
        reminder_every_days=0,
        reminder_max=0,
    )
    at = reminder_time(procedure.patient.clinic, rules)
    values = planned_values(procedure.pk, item, zone=procedure.patient.time_zone, at=at, version=rules.version)
    [pk] = plan_checkpoints(planned=[({**values, "triggered": True}, reason)])
    return Checkpoint.objects.get(pk=pk)


@transaction.atomic
def stop_follow_up(*, patient: Patient, reason: str, by=None) -> int:
    """Cancel every open checkpoint of a withdrawn or deceased patient; returns how many."""
    return sum(
        mark_cancelled(checkpoint=checkpoint, reason=reason, by=by)
        for checkpoint in Checkpoint.objects.open().filter(procedure__patient=patient)
    )


# --- Sweeps -------------------------------------------------------------------------------------


def missed_batches(*, now: datetime, batch_size: int) -> Iterator[list[int]]:
    """Open checkpoints whose window closed by `now` become missed, with a "missed" event each and
    no further reminder, claimed batch by batch with SKIP LOCKED. Yields each batch's ids inside
    its transaction, so what the caller writes for them commits (or rolls back) with the batch."""
    overdue = Checkpoint.objects.overdue(at=now).values_list("id", flat=True)
    for ids in claimed_batches(overdue, batch_size):
        missed = Checkpoint.objects.filter(id__in=ids)
        transition(missed, OPEN_STATES, CheckpointState.MISSED, next_reminder_at=None, updated_at=now)
        _add_events(ids, kind=Kind.MISSED, at=now, reason="window closed")
        yield ids


def open_windows(*, now: datetime, batch_size: int) -> int:
    """Scheduled checkpoints whose window opened by `now` become due, with a "due" event each,
    claimed batch by batch with SKIP LOCKED. Returns how many."""
    count = 0
    opening = Checkpoint.objects.opening(at=now).values_list("id", flat=True)
    for ids in claimed_batches(opening, batch_size):
        opened = Checkpoint.objects.filter(id__in=ids)
        transition(opened, CheckpointState.SCHEDULED, CheckpointState.DUE, updated_at=now)
        _add_events(ids, kind=Kind.DUE, at=now, reason="window opened")
        count += len(ids)
    return count


def record_reminder_outcome(
    *,
    checkpoint_ids: Sequence[int],
    next_reminder_at: datetime | None,
    reminder_blocked: str,
    state: str,
    counted: bool,
    now: datetime,
) -> int:
    """What the reminder sweep decided for open checkpoints it holds locked that share one outcome,
    in one UPDATE: the next reminder moment (None: no more), why the patient is not reminded
    ("" if they are), the state (a first reminder makes a scheduled checkpoint due: record that
    with `record_first_reminders`) and, when a reminder or check-in went out (`counted`), one more
    `reminders_sent`. Returns the number of rows changed."""
    sent = {"reminders_sent": F("reminders_sent") + 1} if counted else {}
    return transition(
        Checkpoint.objects.filter(id__in=checkpoint_ids),
        OPEN_STATES,
        state,
        next_reminder_at=next_reminder_at,
        reminder_blocked=reminder_blocked,
        updated_at=now,
        **sent,
    )


def record_first_reminders(*, checkpoint_ids: Sequence[int], now: datetime) -> None:
    """A "due" CheckpointEvent (reason "first reminder") for each checkpoint that its first reminder
    just made due, in one statement: the reminder sweep's hot path."""
    _add_events(checkpoint_ids, kind=Kind.DUE, at=now, reason="first reminder")


def mark_needs_review(*, procedure_ids: Sequence[int], now: datetime, reason: str) -> int:
    """Checkpoints of these procedures already due (or to be reminded) by `now` are for staff to
    review, not to remind: `needs_review`, no `next_reminder_at`, and a "replanned" event carrying
    `reason` each. Returns how many."""
    past = Checkpoint.objects.filter(procedure_id__in=procedure_ids).filter(
        models.Q(due_at__lte=now) | models.Q(next_reminder_at__lte=now)
    )
    ids = list(past.values_list("id", flat=True))
    Checkpoint.objects.filter(id__in=ids).update(needs_review=True, next_reminder_at=None, updated_at=now)
    _add_events(ids, kind=Kind.REPLANNED, at=now, reason=reason)
    return len(ids)
