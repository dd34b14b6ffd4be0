"""Reminders of open checkpoints: a sweep turns each checkpoint whose `next_reminder_at` has come into
a reminder e-mail (or, for a check-in checkpoint, a CheckIn) and moves the moment on by its cadence.

The sweep is the hot path of `bench/bench_sweep.py`: it reads only what deciding needs and writes
with one statement per distinct outcome.
"""

from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from patients.models import Checkpoint, CheckpointState, PatientStatus
from patients.protocol import get_protocol
from patients.rows import claimed_batches
from patients.services import (
    local_moment,
    procedure_protocol,
    record_first_reminders,
    record_reminder_outcome,
    reminder_time,
)

from .day_messages import Item, write_items
from .message_cap import is_uncapped, sent_this_week, weekly_cap
from .models import CheckIn, DeliveryKind
from .quiet_hours import after_quiet_hours, in_quiet_hours

# What deciding a reminder reads: loading only these keeps the sweep's cost to the rows it claims.
REMINDER_SWEEP_FIELDS = (
    "id",
    "code",
    "protocol_version",
    "state",
    "reminders_sent",
    "reminder_max",
    "reminder_every_days",
    "closes_at",
    "reminder_blocked",
    "procedure__id",
    "procedure__protocol_version",
    "procedure__patient__id",
    "procedure__patient__status",
    "procedure__patient__email_consent",
    "procedure__patient__email",
    "procedure__patient__time_zone",
    "procedure__patient__clinic__id",
    "procedure__patient__clinic__protocol_version",
    "procedure__patient__clinic__reminder_time",
    "procedure__patient__clinic__quiet_hours_start",
    "procedure__patient__clinic__quiet_hours_end",
)


def sweep_reminders(*, now: datetime, batch_size: int = 1000) -> int:
    """Turn open checkpoints whose reminder moment has come into Delivery rows.

    Per batch, in one transaction: claim the rows with SKIP LOCKED, write each reminder as an item of
    its patient's message of the day (alerts/day_messages.py: one e-mail per patient and local day,
    a safety one alone and at once), move each row's `next_reminder_at` on by its cadence (or to the
    next day when that day's e-mail has gone, or past the clinic's quiet hours, or stop it for a
    patient who cannot be e-mailed), and enqueue new deliveries on commit. Returns the number of
    reminders and check-ins written.
    """
    due = (
        Checkpoint.objects.reminder_due(at=now)
        .select_related("procedure__patient__clinic")
        .only(*REMINDER_SWEEP_FIELDS)
        .order_by("next_reminder_at")
    )
    written = 0
    for rows in claimed_batches(due, batch_size):
        written += _remind(rows, now=now)
    return written


def _remind(rows: list[Checkpoint], *, now: datetime) -> int:
    """Write the reminders, check-ins and checkpoint changes of one claimed batch."""
    decided: list[tuple[Checkpoint, Item | None, bool]] = []
    checkins: list[CheckIn] = []
    local_now: dict[str, datetime] = {}
    week = _WeekCounts(sent_this_week((row.procedure.patient.pk for row in rows), now=now))
    for row in rows:
        zone = row.procedure.patient.time_zone
        local = local_now.get(zone) or local_now.setdefault(zone, now.astimezone(ZoneInfo(zone)))
        item, checkin, counted = _next_step(row, local=local, now=now, week=week)
        decided.append((row, item, counted))
        if checkin:
            checkins.append(checkin)
    placed = write_items([item for _row, item, _counted in decided if item], now=now)
    first_reminded: list[int] = []  # checkpoints that become due with this reminder
    changes: dict[tuple, list[int]] = defaultdict(list)  # (next, +1?, blocked, state) → ids
    for row, item, counted in decided:
        if item and item.cause not in placed:  # the day's e-mail has gone: with the next day's
            row.next_reminder_at, counted = _tomorrow(row, local_now[row.procedure.patient.time_zone]), False
        if counted and row.state == CheckpointState.SCHEDULED:
            row.state = CheckpointState.DUE
            first_reminded.append(row.pk)
        changes[(row.next_reminder_at, counted, row.reminder_blocked, row.state)].append(row.pk)
    _write_checkpoint_reminder_state(changes, first_reminded, now=now)
    CheckIn.objects.bulk_create(checkins, ignore_conflicts=True)
    return sum(1 for _row, item, _counted in decided if item and item.cause in placed) + len(checkins)


class _WeekCounts:
    """The weekly cap within one batch: a patient already written to in this batch gets the next
    reminder in the same message (same-day items go together), so only their first one counts."""

    def __init__(self, counts: Counter):
        self.counts, self.messaged = counts, set()

    def capped(self, row: Checkpoint) -> bool:
        patient = row.procedure.patient.pk
        uncapped = is_uncapped(row.protocol_version, row.code)
        return (
            not uncapped and patient not in self.messaged and self.counts[patient] >= weekly_cap(row.protocol_version)
        )

    def written(self, row: Checkpoint) -> None:
        patient = row.procedure.patient.pk
        if patient not in self.messaged and not is_uncapped(row.protocol_version, row.code):
            self.counts[patient] += 1
            self.messaged.add(patient)


def _next_step(
    row: Checkpoint, *, local: datetime, now: datetime, week: _WeekCounts
) -> tuple[Item | None, CheckIn | None, bool]:
    """Decide one claimed checkpoint's reminder, setting its `next_reminder_at` (and
    `reminder_blocked`); returns the reminder to write, the check-in to add, and whether either
    counts as a reminder sent."""
    patient = row.procedure.patient
    clinic = patient.clinic
    is_checkin = row.code in get_protocol(row.protocol_version).checkin.checkpoints
    blocked = _block_reason(row)
    if blocked and not (is_checkin and patient.status == PatientStatus.ACTIVE):
        row.next_reminder_at, row.reminder_blocked = None, blocked
        return None, None, False
    if is_checkin:
        # A check-in instead of a reminder: the check-in sweep invites (quiet hours permitting),
        # re-sends once, then makes it a phone-call task, which is also where a patient who cannot
        # be e-mailed goes at once.
        row.next_reminder_at, row.reminder_blocked = None, blocked
        checkin = CheckIn(patient=patient, procedure=row.procedure, checkpoint=row, reason=row.code, next_action_at=now)
        return None, checkin, True
    if in_quiet_hours(clinic, local):
        row.next_reminder_at = after_quiet_hours(clinic, local, patient.time_zone)
        return None, None, False
    if week.capped(row):  # the weekly cap is reached: try again tomorrow, while the window lasts
        row.next_reminder_at = _tomorrow(row, local)
        return None, None, False
    week.written(row)
    reminder = Item(
        cause=f"reminder:{row.pk}:{row.reminders_sent + 1}",
        kind=DeliveryKind.REMINDER,
        patient=patient.pk,
        day=local.date(),
        recipient=patient.email,
        clinic=clinic.pk,
        protocol_version=row.protocol_version,
        checkpoint=row.pk,
        uncapped=is_uncapped(row.protocol_version, row.code),
    )
    at = reminder_time(clinic, procedure_protocol(row.procedure))
    row.next_reminder_at = _next_reminder(row, local, at, patient.time_zone)
    return reminder, None, True


def _tomorrow(row: Checkpoint, local: datetime) -> datetime | None:
    """The reminder moment of the patient's next day, while the checkpoint's window lasts."""
    patient = row.procedure.patient
    at = reminder_time(patient.clinic, procedure_protocol(row.procedure))
    tomorrow = local_moment(local.date() + timedelta(days=1), at, patient.time_zone)
    return tomorrow if tomorrow < row.closes_at else None


def _block_reason(checkpoint: Checkpoint) -> str:
    patient = checkpoint.procedure.patient
    if patient.status != PatientStatus.ACTIVE:
        return f"patient {patient.status}"
    if not patient.email_consent:
        return "no e-mail consent"
    if not patient.email:
        return "no e-mail address"
    return ""


def _next_reminder(checkpoint: Checkpoint, local: datetime, at: time, zone: str) -> datetime | None:
    if checkpoint.reminders_sent + 1 >= checkpoint.reminder_max:
        return None
    moment = local_moment(local.date() + timedelta(days=checkpoint.reminder_every_days), at, zone)
    return moment if moment < checkpoint.closes_at else None


def _write_checkpoint_reminder_state(changes: dict[tuple, list[int]], first_reminded: list[int], *, now) -> None:
    """Hand the sweep's decisions to the checkpoint writer: each claimed checkpoint's next reminder
    moment, reminders sent, block reason and state (`changes`: (next_reminder_at, counted,
    reminder_blocked, state) → checkpoint ids), and a "due" event for each checkpoint in
    `first_reminded`, which became due with its first reminder."""
    # Rows share few distinct outcomes (one per cadence and time zone): one UPDATE for each.
    for (next_at, counted, blocked, state), ids in changes.items():
        record_reminder_outcome(
            checkpoint_ids=ids,
            next_reminder_at=next_at,
            reminder_blocked=blocked,
            state=state,
            counted=counted,
            now=now,
        )
    record_first_reminders(checkpoint_ids=first_reminded, now=now)
