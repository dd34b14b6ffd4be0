"""Reminders of open checkpoints: a sweep turns each checkpoint whose `next_reminder_at` has come into
a reminder e-mail (or, for a check-in checkpoint, a CheckIn) and moves the moment on by its cadence.

The sweep is the hot path of `bench/bench_sweep.py`: it reads only what deciding needs and writes
with one statement per distinct outcome.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import F

from patients.models import Checkpoint, CheckpointState, Clinic, PatientStatus
from patients.protocol import get_protocol
from patients.rows import claimed_batches
from patients.services import (
    local_moment,
    record_first_reminders,
    record_reminder_outcome,
    reminder_time,
)

from .day_messages import Item, write_items
from .message_cap import is_uncapped, sent_this_week, weekly_cap
from .models import CheckIn, DeliveryKind
from .quiet_hours import after_quiet_hours, in_quiet_hours

# What deciding a reminder reads, as plain named rows: loading only these (and no model instances)
# keeps the sweep's cost to the rows it claims. Clinics are few and shared: loaded once per sweep.
REMINDER_SWEEP_FIELDS = (
    "id",
    "code",
    "protocol_version",
    "state",
    "reminders_sent",
    "reminder_max",
    "reminder_every_days",
    "closes_at",
    "procedure_id",
)
REMINDER_SWEEP_JOINED = {
    "procedure_version": F("procedure__protocol_version"),
    "patient_id": F("procedure__patient_id"),
    "patient_status": F("procedure__patient__status"),
    "email_consent": F("procedure__patient__email_consent"),
    "email": F("procedure__patient__email"),
    "time_zone": F("procedure__patient__time_zone"),
    "clinic_id": F("procedure__patient__clinic_id"),
}
CLINIC_FIELDS = ("id", "protocol_version", "reminder_time", "quiet_hours_start", "quiet_hours_end")


@dataclass
class _Step:
    """What the sweep decided for one claimed checkpoint."""

    next_reminder_at: datetime | None
    blocked: str = ""
    reminder: Item | None = None
    checkin: CheckIn | None = None
    counted: bool = False  # a reminder or check-in went out


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
        .annotate(**REMINDER_SWEEP_JOINED)
        .values_list(*REMINDER_SWEEP_FIELDS, *REMINDER_SWEEP_JOINED, named=True)
        .order_by("next_reminder_at")
    )
    clinics = _Clinics()
    written = 0
    for rows in claimed_batches(due, batch_size):
        written += _remind(rows, now=now, clinics=clinics)
    return written


class _Clinics(dict):
    """The clinics of the rows swept so far, by id, each read once."""

    def load(self, rows) -> None:
        missing = {row.clinic_id for row in rows} - self.keys()
        if missing:
            self.update(Clinic.objects.only(*CLINIC_FIELDS).in_bulk(missing))


def _remind(rows: list, *, now: datetime, clinics: _Clinics) -> int:
    """Write the reminders, check-ins and checkpoint changes of one claimed batch."""
    decided: list[tuple] = []  # (row, its step, the patient's local now)
    local_now: dict[str, datetime] = {}
    clinics.load(rows)
    week = _WeekCounts(sent_this_week((row.patient_id for row in rows), now=now))
    for row in rows:
        zone = row.time_zone
        local = local_now.get(zone) or local_now.setdefault(zone, now.astimezone(ZoneInfo(zone)))
        decided.append((row, _next_step(row, clinics[row.clinic_id], local=local, now=now, week=week), local))
    placed = write_items([step.reminder for _row, step, _local in decided if step.reminder], now=now)
    first_reminded: list[int] = []  # checkpoints that become due with this reminder
    changes: dict[tuple, list[int]] = defaultdict(list)  # (next, +1?, blocked, state) → ids
    for row, step, local in decided:
        if step.reminder and step.reminder.cause not in placed:  # the day's e-mail has gone: the next day's
            step.next_reminder_at, step.counted = _tomorrow(row, clinics[row.clinic_id], local), False
        state = row.state
        if step.counted and state == CheckpointState.SCHEDULED:
            state = CheckpointState.DUE
            first_reminded.append(row.id)
        changes[(step.next_reminder_at, step.counted, step.blocked, state)].append(row.id)
    _write_checkpoint_reminder_state(changes, first_reminded, now=now)
    checkins = [step.checkin for _row, step, _local in decided if step.checkin]
    CheckIn.objects.bulk_create(checkins, ignore_conflicts=True)
    return sum(1 for _row, step, _local in decided if step.reminder and step.reminder.cause in placed) + len(checkins)


class _WeekCounts:
    """The weekly cap within one batch: a patient already written to in this batch gets the next
    reminder in the same message (same-day items go together), so only their first one counts."""

    def __init__(self, counts: Counter):
        self.counts, self.messaged = counts, set()

    def capped(self, row) -> bool:
        patient = row.patient_id
        uncapped = is_uncapped(row.protocol_version, row.code)
        return (
            not uncapped and patient not in self.messaged and self.counts[patient] >= weekly_cap(row.protocol_version)
        )

    def written(self, row) -> None:
        patient = row.patient_id
        if patient not in self.messaged and not is_uncapped(row.protocol_version, row.code):
            self.counts[patient] += 1
            self.messaged.add(patient)


def _next_step(row, clinic: Clinic, *, local: datetime, now: datetime, week: _WeekCounts) -> _Step:
    """Decide one claimed checkpoint's reminder: its next reminder moment (and block reason), the
    reminder to write or the check-in to add, and whether either counts as a reminder sent."""
    is_checkin = row.code in get_protocol(row.protocol_version).checkin.checkpoints
    blocked = _block_reason(row)
    if blocked and not (is_checkin and row.patient_status == PatientStatus.ACTIVE):
        return _Step(None, blocked)
    if is_checkin:
        # A check-in instead of a reminder: the check-in sweep invites (quiet hours permitting),
        # re-sends once, then makes it a phone-call task, which is also where a patient who cannot
        # be e-mailed goes at once.
        checkin = CheckIn(
            patient_id=row.patient_id,
            procedure_id=row.procedure_id,
            checkpoint_id=row.id,
            reason=row.code,
            next_action_at=now,
        )
        return _Step(None, blocked, checkin=checkin, counted=True)
    if in_quiet_hours(clinic, local):
        return _Step(after_quiet_hours(clinic, local, row.time_zone))
    if week.capped(row):  # the weekly cap is reached: try again tomorrow, while the window lasts
        return _Step(_tomorrow(row, clinic, local))
    week.written(row)
    reminder = Item(
        cause=f"reminder:{row.id}:{row.reminders_sent + 1}",
        kind=DeliveryKind.REMINDER,
        patient=row.patient_id,
        day=local.date(),
        recipient=row.email,
        clinic=clinic.pk,
        protocol_version=row.protocol_version,
        checkpoint=row.id,
        uncapped=is_uncapped(row.protocol_version, row.code),
    )
    next_at = _next_reminder(row, local, _reminder_time(row, clinic), row.time_zone)
    return _Step(next_at, reminder=reminder, counted=True)


def _reminder_time(row, clinic: Clinic) -> time:
    return reminder_time(clinic, get_protocol(row.procedure_version or clinic.protocol_version))


def _tomorrow(row, clinic: Clinic, local: datetime) -> datetime | None:
    """The reminder moment of the patient's next day, while the checkpoint's window lasts."""
    tomorrow = local_moment(local.date() + timedelta(days=1), _reminder_time(row, clinic), row.time_zone)
    return tomorrow if tomorrow < row.closes_at else None


def _block_reason(row) -> str:
    if row.patient_status != PatientStatus.ACTIVE:
        return f"patient {row.patient_status}"
    if not row.email_consent:
        return "no e-mail consent"
    if not row.email:
        return "no e-mail address"
    return ""


def _next_reminder(checkpoint, local: datetime, at: time, zone: str) -> datetime | None:
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
