"""Writes for the alerts app: the outbox (reminders, digests) and its delivery.

Every message is first a Delivery row written in the same transaction as its cause, then sent by a
task that claims the row by a conditional UPDATE. Each function says which rows change and what is
enqueued.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from patients.models import Audience, Checkpoint, CheckpointEvent, CheckpointState, Clinic, PatientStatus, StaffRole
from patients.services import local_moment, procedure_protocol, reminder_time

from . import messages
from .channels import CHANNELS, DeliveryError
from .models import Delivery, DeliveryKind, DeliveryState, DigestRun, WorkerHeartbeat

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # then the delivery is marked failed for a coordinator [DESIGN]
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 600  # below the broker's visibility timeout (RELIABILITY.md §1)
SENDING_LEASE = timedelta(minutes=5)  # a send claimed longer ago than this was lost with its worker
ENQUEUE_BATCH = 100  # delivery ids per task


def record_heartbeat(*, hostname: str) -> WorkerHeartbeat:
    """Upsert this worker's heartbeat row with the current time."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"beat_at": timezone.now()})
    return heartbeat


def enqueue_deliveries(ids: list[int]) -> None:
    """Hand delivery ids to the worker once the current transaction commits."""
    from .tasks import deliver_task

    for start in range(0, len(ids), ENQUEUE_BATCH):
        deliver_task.delay_on_commit(ids[start : start + ENQUEUE_BATCH])


# --- Reminders ----------------------------------------------------------------------------------


def _in_quiet_hours(clinic: Clinic, local: datetime) -> bool:
    return clinic.in_quiet_hours(local.time())


def _after_quiet_hours(clinic: Clinic, local: datetime, zone: str) -> datetime:
    day = local.date() if local.time() < clinic.quiet_hours_end else local.date() + timedelta(days=1)
    return local_moment(day, clinic.quiet_hours_end, zone)


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


def sweep_reminders(*, now: datetime, batch_size: int = 1000) -> int:
    """Turn open checkpoints whose reminder moment has come into Delivery rows.

    Per batch, in one transaction: claim the rows with SKIP LOCKED, write one Delivery per reminder
    (unique per checkpoint and reminder number), move each row's `next_reminder_at` on by its cadence
    (or defer it past the clinic's quiet hours, or stop it for a patient who cannot be e-mailed), and
    enqueue the new deliveries on commit. Returns the number of deliveries written.
    """
    written = 0
    while True:
        with transaction.atomic():
            rows = list(
                Checkpoint.objects.reminder_due(at=now)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("procedure__patient__clinic")
                .order_by("next_reminder_at")[:batch_size]
            )
            if not rows:
                return written
            deliveries, events = [], []
            for row in rows:
                patient = row.procedure.patient
                clinic = patient.clinic
                local = now.astimezone(ZoneInfo(patient.time_zone))
                blocked = _block_reason(row)
                if blocked:
                    row.next_reminder_at, row.reminder_blocked = None, blocked
                    continue
                if _in_quiet_hours(clinic, local):
                    row.next_reminder_at = _after_quiet_hours(clinic, local, patient.time_zone)
                    continue
                deliveries.append(
                    Delivery(
                        kind=DeliveryKind.REMINDER,
                        cause=f"reminder:{row.pk}:{row.reminders_sent + 1}",
                        recipient=patient.email,
                        clinic=clinic,
                        checkpoint=row,
                        next_attempt_at=now,
                    )
                )
                at = reminder_time(clinic, procedure_protocol(row.procedure))
                row.next_reminder_at = _next_reminder(row, local, at, patient.time_zone)
                row.reminders_sent += 1
                if row.state == CheckpointState.SCHEDULED:
                    row.state = CheckpointState.DUE
                    events.append(
                        CheckpointEvent(checkpoint=row, kind=CheckpointEvent.Kind.DUE, at=now, reason="first reminder")
                    )
                row.updated_at = now
            Checkpoint.objects.bulk_update(
                rows, ["next_reminder_at", "reminders_sent", "reminder_blocked", "state", "updated_at"]
            )
            CheckpointEvent.objects.bulk_create(events)
            created = Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
            ids = list(
                Delivery.objects.filter(cause__in=[d.cause for d in created], state=DeliveryState.PENDING).values_list(
                    "id", flat=True
                )
            )
            enqueue_deliveries(ids)
            written += len(ids)


# --- Digest -------------------------------------------------------------------------------------


def sweep_digests(*, now: datetime) -> int:
    """Write today's digest for each clinic whose local digest time has passed, once per local date.
    Returns the number of deliveries written."""
    written = 0
    for clinic in Clinic.objects.all():
        local = now.astimezone(ZoneInfo(clinic.time_zone))
        if local.time() < clinic.digest_time:
            continue
        written += _write_digest(clinic=clinic, local_date=local.date(), now=now)
    return written


def _write_digest(*, clinic: Clinic, local_date, now: datetime) -> int:
    previous = DigestRun.objects.filter(clinic=clinic).order_by("-local_date").first()
    since = previous.until if previous else now - timedelta(days=1)
    missed = CheckpointEvent.objects.filter(
        kind=CheckpointEvent.Kind.MISSED, at__gt=since, at__lte=now, checkpoint__procedure__patient__clinic=clinic
    ).count()
    due_tasks = Checkpoint.objects.filter(
        procedure__patient__clinic=clinic, audience=Audience.COORDINATOR_TASK, state=CheckpointState.DUE
    ).count()
    recipients = list(
        clinic.memberships.filter(role=StaffRole.COORDINATOR, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    try:
        with transaction.atomic():
            DigestRun.objects.create(clinic=clinic, local_date=local_date, since=since, until=now, missed_count=missed)
            created = Delivery.objects.bulk_create(
                Delivery(
                    kind=DeliveryKind.DIGEST,
                    cause=f"digest:{clinic.pk}:{local_date}",
                    recipient=email,
                    clinic=clinic,
                    next_attempt_at=now,
                    context={"missed_count": missed, "due_tasks_count": due_tasks, "local_date": str(local_date)},
                )
                for email in recipients
            )
            enqueue_deliveries([delivery.pk for delivery in created])
    except IntegrityError:
        return 0  # another sweeper wrote this clinic's digest for today first
    return len(created)


# --- Delivery -----------------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> int:
    """Exponential backoff with full jitter, capped below the broker's visibility timeout."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return random.randint(ceiling // 2, ceiling)


@dataclass
class Outcome:
    state: str
    retry_in: int | None = None


def _still_wanted(delivery: Delivery) -> bool:
    if delivery.kind != DeliveryKind.REMINDER:
        return True
    checkpoint = delivery.checkpoint
    patient = checkpoint.procedure.patient
    return checkpoint.is_open and patient.status == PatientStatus.ACTIVE and patient.email_consent


def deliver(*, delivery_id: int) -> Outcome:
    """Claim one pending delivery, send it, and record the result.

    The claim is a conditional UPDATE (pending → sending), so two workers never send the same row.
    A transient failure puts the row back to pending with a backed-off `next_attempt_at`; a permanent
    one, or the last attempt, marks it failed for a coordinator. A reminder whose checkpoint was
    completed or cancelled meanwhile is cancelled instead of sent.
    """
    now = timezone.now()
    claimed = Delivery.objects.filter(id=delivery_id, state=DeliveryState.PENDING).update(
        state=DeliveryState.SENDING, claimed_at=now, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return Outcome("skipped")
    delivery = Delivery.objects.select_related("clinic", "checkpoint__procedure__patient").get(id=delivery_id)
    mine = Delivery.objects.filter(id=delivery_id, state=DeliveryState.SENDING, claimed_at=now)
    if not _still_wanted(delivery):
        mine.update(state=DeliveryState.CANCELLED, last_error="no longer wanted", updated_at=timezone.now())
        return Outcome(DeliveryState.CANCELLED)
    try:
        channel = CHANNELS[delivery.channel]
        channel.send(messages.build(delivery))
    except DeliveryError as exc:
        if exc.permanent or delivery.attempts >= MAX_ATTEMPTS:
            mine.update(state=DeliveryState.FAILED, last_error=str(exc)[:300], updated_at=timezone.now())
            logger.warning("delivery %s failed permanently after %s attempts: %s", delivery.pk, delivery.attempts, exc)
            return Outcome(DeliveryState.FAILED)
        wait = backoff_seconds(delivery.attempts)
        mine.update(
            state=DeliveryState.PENDING,
            last_error=str(exc)[:300],
            claimed_at=None,
            next_attempt_at=timezone.now() + timedelta(seconds=wait),
            updated_at=timezone.now(),
        )
        logger.info("delivery %s attempt %s failed, retry in %s s: %s", delivery.pk, delivery.attempts, wait, exc)
        return Outcome(DeliveryState.PENDING, retry_in=wait)
    mine.update(state=DeliveryState.SENT, sent_at=timezone.now(), last_error="", updated_at=timezone.now())
    return Outcome(DeliveryState.SENT)


def sweep_deliveries(*, now: datetime, batch_size: int = 1000) -> int:
    """Find deliveries whose task was lost and hand them out again.

    Rows left in `sending` past the lease go back to pending. Pending rows whose attempt is due are
    enqueued, and their `next_attempt_at` is pushed one lease ahead so that the next sweep does not
    enqueue them again while they wait in the queue. Returns the number enqueued.
    """
    Delivery.objects.stuck(claimed_before=now - SENDING_LEASE).update(
        state=DeliveryState.PENDING, claimed_at=None, next_attempt_at=now, updated_at=now
    )
    enqueued = 0
    while True:
        with transaction.atomic():
            ids = list(
                Delivery.objects.ready(at=now)
                .select_for_update(skip_locked=True)
                .order_by("next_attempt_at")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return enqueued
            Delivery.objects.filter(id__in=ids).update(next_attempt_at=now + SENDING_LEASE, updated_at=now)
            enqueue_deliveries(ids)
            enqueued += len(ids)
