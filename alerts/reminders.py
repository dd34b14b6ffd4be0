"""Reminders of open checkpoints: a sweep turns each checkpoint whose `next_reminder_at` has come into
a reminder e-mail (or, for a check-in checkpoint, a CheckIn) and moves the moment on by its cadence.

The sweep is the hot path of `bench/bench_sweep.py`: it reads only what deciding needs and writes
with one statement per distinct outcome.
"""

import json
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection

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

from .message_cap import UNCAPPED, is_uncapped, sent_this_week, weekly_cap
from .models import CheckIn, DeliveryKind, DeliveryState
from .outbox import enqueue_deliveries
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

ReminderRow = tuple[str, str, int, int, int, bool]  # cause, recipient, clinic id, checkpoint id, patient id, uncapped


def sweep_reminders(*, now: datetime, batch_size: int = 1000) -> int:
    """Turn open checkpoints whose reminder moment has come into Delivery rows.

    Per batch, in one transaction: claim the rows with SKIP LOCKED, write one Delivery per reminder
    (unique per checkpoint and reminder number), move each row's `next_reminder_at` on by its cadence
    (or defer it past the clinic's quiet hours, or stop it for a patient who cannot be e-mailed), and
    enqueue the new deliveries on commit. Returns the number of deliveries and check-ins written.
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
    deliveries: list[ReminderRow] = []
    checkins: list[CheckIn] = []
    first_reminded: list[int] = []  # checkpoints that become due with this reminder
    changes: dict[tuple, list[int]] = defaultdict(list)  # (next, +1?, blocked, state) → ids
    local_now: dict[str, datetime] = {}
    week = _WeekCounts(sent_this_week((row.procedure.patient.pk for row in rows), now=now))
    for row in rows:
        zone = row.procedure.patient.time_zone
        local = local_now.get(zone) or local_now.setdefault(zone, now.astimezone(ZoneInfo(zone)))
        delivery, checkin, counted = _next_step(row, local=local, now=now, week=week)
        if delivery:
            deliveries.append(delivery)
        if checkin:
            checkins.append(checkin)
        if counted and row.state == CheckpointState.SCHEDULED:
            row.state = CheckpointState.DUE
            first_reminded.append(row.pk)
        changes[(row.next_reminder_at, counted, row.reminder_blocked, row.state)].append(row.pk)
    _write_checkpoint_reminder_state(changes, first_reminded, now=now)
    CheckIn.objects.bulk_create(checkins, ignore_conflicts=True)
    ids = _insert_reminders(deliveries, now=now)
    enqueue_deliveries(ids)
    return len(ids) + len(checkins)


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
) -> tuple[ReminderRow | None, CheckIn | None, bool]:
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
    at = reminder_time(clinic, procedure_protocol(row.procedure))
    if week.capped(row):  # the weekly cap is reached: try again tomorrow, while the window lasts
        tomorrow = local_moment(local.date() + timedelta(days=1), at, patient.time_zone)
        row.next_reminder_at = tomorrow if tomorrow < row.closes_at else None
        return None, None, False
    week.written(row)
    uncapped = is_uncapped(row.protocol_version, row.code)
    reminder = (f"reminder:{row.pk}:{row.reminders_sent + 1}", patient.email, clinic.pk, row.pk, patient.pk, uncapped)
    row.next_reminder_at = _next_reminder(row, local, at, patient.time_zone)
    return reminder, None, True


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


def _one_per_patient(rows: list[ReminderRow]) -> list[tuple[str, str, int, int, str]]:
    """The reminders of one patient written together become one message: the first one's cause and
    checkpoint, every checkpoint in its context, uncapped only if all of them are."""
    grouped: dict[int, list[ReminderRow]] = defaultdict(list)
    for row in rows:
        grouped[row[4]].append(row)
    messages = []
    for items in grouped.values():
        cause, recipient, clinic, checkpoint = items[0][:4]
        context = {"checkpoints": [item[3] for item in items]}
        if all(item[5] for item in items):
            context[UNCAPPED] = True
        messages.append((cause, recipient, clinic, checkpoint, json.dumps(context)))
    return messages


def _insert_reminders(rows: list[ReminderRow], *, now: datetime) -> list[int]:
    """Write reminder deliveries, one per patient; return the ids of those written. A cause already
    written is skipped (the unique constraint), never doubled: one INSERT … SELECT FROM unnest … ON
    CONFLICT DO NOTHING RETURNING, the sweep's hot path."""
    if not rows:
        return []
    causes, recipients, clinics, checkpoints, contexts = (
        list(column) for column in zip(*_one_per_patient(rows), strict=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO alerts_delivery (kind, channel, cause, recipient, clinic_id, checkpoint_id, context, state,"
            " attempts, next_attempt_at, last_error, created_at, updated_at)"
            " SELECT %s, %s, t.cause, t.recipient, t.clinic, t.checkpoint, t.context::jsonb, %s, 0, %s, '', %s, %s"
            " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[])"
            " AS t(cause, recipient, clinic, checkpoint, context)"
            " ON CONFLICT (cause, channel, recipient) DO NOTHING RETURNING id",
            [
                DeliveryKind.REMINDER,
                "email",
                DeliveryState.PENDING,
                now,
                now,
                now,
                causes,
                recipients,
                clinics,
                checkpoints,
                contexts,
            ],
        )
        return [row[0] for row in cursor.fetchall()]
