"""The outbox: Delivery rows are claimed, sent and marked by id; lost ones are found again by a sweep.

Every message is first a Delivery row written in the same transaction as its cause. A task claims
the row by a conditional UPDATE (pending → sending), sends, and marks it sent, so two workers never
send one row; a send killed in flight is repeated once at most, after its lease runs out.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from patients.models import Clinic, PatientStatus
from patients.rows import claimed_batches, transition

from . import messages
from .channels import CHANNELS, DeliveryError
from .models import Alert, AlertEvent, AlertState, CheckInState, Delivery, DeliveryKind, DeliveryState

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # then the delivery is marked failed for a coordinator [DESIGN]
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 600  # below the broker's visibility timeout (RELIABILITY.md §1)
SENDING_LEASE = timedelta(minutes=5)  # a send claimed longer ago than this was lost with its worker
ENQUEUE_BATCH = 100  # delivery ids per task
# Sent by name, so that this module need not import the tasks module that imports it (alerts/tasks.py).
DELIVER_TASK = "alerts.tasks.deliver_task"


def enqueue_deliveries(ids: list[int]) -> None:
    """Hand delivery ids to the worker once the current transaction commits. This is only the fast
    path: if the broker is unreachable the failure is logged and the committed write still stands,
    and the delivery sweep hands the rows out when the broker is back."""
    for start in range(0, len(ids), ENQUEUE_BATCH):

        def hand_out(batch=ids[start : start + ENQUEUE_BATCH]) -> None:
            current_app.send_task(DELIVER_TASK, args=[batch], ignore_result=True)

        transaction.on_commit(hand_out, robust=True)


def backoff_seconds(attempts: int) -> int:
    """Exponential backoff with jitter, capped below the broker's visibility timeout."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return random.randint(ceiling // 2, ceiling)


# What building and sending each kind of message reads, fetched with the row in one query
# (a page reads its own, see PAGE_SQL).
RELATED = {
    DeliveryKind.WEBHOOK: ("clinic", "alert", "endpoint", "checkpoint__procedure"),
    DeliveryKind.REMINDER: ("clinic", "checkpoint__procedure__patient"),
    DeliveryKind.CHECKIN: ("clinic", "checkin__patient", "checkin__procedure"),
    DeliveryKind.DIGEST: ("clinic",),
}


@dataclass
class Outcome:
    state: str
    retry_in: int | None = None


def _fetch(delivery_id: int, kind: str) -> Delivery:
    """The delivery with what building its message needs."""
    if kind == DeliveryKind.ALERT:
        return _fetch_page(delivery_id)
    return Delivery.objects.select_related(*RELATED[kind]).get(id=delivery_id)


# A page is the message whose latency matters (bench/bench_alert_latency.py): its delivery, alert
# and clinic are read in one statement written out here, because compiling the same select_related
# query cost more CPU than building and sending the page. The alert's row is locked by it: an
# acknowledgement waits for this send to finish, so no page goes out after an acknowledgement has
# committed, and the state read here is the committed one.
PAGE_SQL = """
    SELECT a.id, a.state, a.tier, a.code, a.protocol_version, a.rule_source, a.action,
           a.last_seen_at, a.count, a.clinic_id,
           c.name AS page_clinic_name, d.channel AS page_channel, d.recipient AS page_recipient,
           d.recipient_user_id AS page_recipient_user_id, d.attempts AS page_attempts
      FROM alerts_delivery d
      JOIN alerts_alert a ON a.id = d.alert_id
      JOIN patients_clinic c ON c.id = d.clinic_id
     WHERE d.id = %s
"""


def _fetch_page(delivery_id: int) -> Delivery:
    alert = next(iter(Alert.objects.raw(PAGE_SQL + " FOR UPDATE OF a", [delivery_id])), None)
    if alert is None:
        raise Delivery.DoesNotExist(f"page delivery #{delivery_id} has no alert")
    return Delivery(
        id=delivery_id,
        kind=DeliveryKind.ALERT,
        channel=alert.page_channel,
        recipient=alert.page_recipient,
        recipient_user_id=alert.page_recipient_user_id,
        attempts=alert.page_attempts,
        state=DeliveryState.SENDING,
        clinic=Clinic(id=alert.clinic_id, name=alert.page_clinic_name),
        alert=alert,
    )


def _still_wanted(delivery: Delivery) -> bool:
    if delivery.kind == DeliveryKind.ALERT:
        return delivery.alert.state == AlertState.OPEN
    if delivery.kind == DeliveryKind.REMINDER:
        checkpoint = delivery.checkpoint
        patient = checkpoint.procedure.patient
        return checkpoint.is_open and patient.status == PatientStatus.ACTIVE and patient.email_consent
    if delivery.kind == DeliveryKind.CHECKIN:
        patient = delivery.checkin.patient
        return (
            delivery.checkin.state == CheckInState.INVITED
            and patient.status == PatientStatus.ACTIVE
            and patient.email_consent
        )
    return True


def _failed_for_good(delivery: Delivery, error: str) -> None:
    if delivery.kind == DeliveryKind.ALERT and delivery.alert_id:
        # A channel that fails past its retries hands the alert to the next escalation step now.
        now = timezone.now()
        Alert.objects.filter(pk=delivery.alert_id, state=AlertState.OPEN).update(next_escalation_at=now)
        AlertEvent.objects.create(
            alert_id=delivery.alert_id,
            kind=AlertEvent.Kind.DELIVERY_FAILED,
            at=now,
            note=f"delivery #{delivery.pk} failed: {error}"[:300],
        )
    logger.warning("delivery %s failed permanently after %s attempts: %s", delivery.pk, delivery.attempts, error)


def _claim(delivery_id: int, *, now: datetime) -> str | None:
    """pending → sending, attempt counted, in one statement that also returns the delivery's kind
    (so that the row can then be read with what its kind needs); None if it was not pending."""
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE alerts_delivery SET state = %s, claimed_at = %s, attempts = attempts + 1, updated_at = %s "
            "WHERE id = %s AND state = %s RETURNING kind",
            [DeliveryState.SENDING, at, at, delivery_id, DeliveryState.PENDING],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def deliver(*, delivery_id: int) -> Outcome:
    """Claim one pending delivery, send it, and record the result.

    A transient failure puts the row back to pending with a backed-off `next_attempt_at`; a permanent
    one, or the last attempt, marks it failed for a coordinator. A message whose cause went away
    meanwhile (checkpoint completed, check-in answered, alert acknowledged) is cancelled, not sent.
    The claim commits before the send, so a worker killed mid-send leaves the row `sending` with its
    attempt counted, for the sweep to hand out again once the lease has run out.
    """
    now = timezone.now()
    kind = _claim(delivery_id, now=now)
    if kind is None:
        return Outcome("skipped")
    mine = Delivery.objects.filter(id=delivery_id, claimed_at=now)  # still sending under this claim
    delivery = None
    try:
        # Sent and recorded in one transaction; a DeliveryError rolls it back (with any link made
        # for the message) and is recorded below.
        with transaction.atomic():
            delivery = _fetch(delivery_id, kind)
            if not _still_wanted(delivery):
                transition(mine, DeliveryState.SENDING, DeliveryState.CANCELLED, last_error="no longer wanted")
                return Outcome(DeliveryState.CANCELLED)
            CHANNELS[delivery.channel].send(messages.build(delivery))
            transition(mine, DeliveryState.SENDING, DeliveryState.SENT, sent_at=timezone.now(), last_error="")
            return Outcome(DeliveryState.SENT)
    except DeliveryError as exc:
        error = str(exc)[:300]
        if exc.permanent or delivery.attempts >= MAX_ATTEMPTS:
            transition(mine, DeliveryState.SENDING, DeliveryState.FAILED, last_error=error)
            _failed_for_good(delivery, error)
            return Outcome(DeliveryState.FAILED)
        wait = backoff_seconds(delivery.attempts)
        transition(
            mine,
            DeliveryState.SENDING,
            DeliveryState.PENDING,
            last_error=error,
            claimed_at=None,
            next_attempt_at=timezone.now() + timedelta(seconds=wait),
        )
        logger.info("delivery %s attempt %s failed, retry in %s s: %s", delivery.pk, delivery.attempts, wait, error)
        return Outcome(DeliveryState.PENDING, retry_in=wait)


def sweep_deliveries(*, now: datetime, batch_size: int = 1000) -> int:
    """Find deliveries whose task was lost and hand them out again.

    Rows left in `sending` past the lease go back to pending. Pending rows whose attempt is due are
    enqueued, and their `next_attempt_at` is pushed one lease ahead so that the next sweep does not
    enqueue them again while they wait in the queue. Returns the number enqueued.
    """
    transition(
        Delivery.objects.stuck(claimed_before=now - SENDING_LEASE),
        DeliveryState.SENDING,
        DeliveryState.PENDING,
        claimed_at=None,
        next_attempt_at=now,
        updated_at=now,
    )
    enqueued = 0
    ready = Delivery.objects.ready(at=now).order_by("next_attempt_at").values_list("id", flat=True)
    for ids in claimed_batches(ready, batch_size):
        Delivery.objects.filter(id__in=ids).update(next_attempt_at=now + SENDING_LEASE, updated_at=now)
        enqueue_deliveries(ids)
        enqueued += len(ids)
    return enqueued


def retry_delivery(*, delivery: Delivery, by=None) -> Delivery:
    """A coordinator's retry of a failed delivery: pending again, attempts from zero, sent now."""
    now = timezone.now()
    with transaction.atomic():
        changed = transition(
            Delivery.objects.filter(pk=delivery.pk),
            DeliveryState.FAILED,
            DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_at=None,
            updated_at=now,
        )
        if not changed:
            raise ValidationError({"state": ["Only a failed delivery can be retried."]})
        enqueue_deliveries([delivery.pk])
    delivery.refresh_from_db()
    return delivery


def dismiss_delivery(*, delivery: Delivery, note: str, by=None) -> Delivery:
    """A coordinator dealt with a failed delivery another way (e.g. phoned the patient)."""
    if not note.strip():
        raise ValidationError({"note": ["Say how it was dealt with."]})
    changed = transition(
        Delivery.objects.filter(pk=delivery.pk),
        DeliveryState.FAILED,
        DeliveryState.CANCELLED,
        last_error=f"dismissed: {note}"[:300],
    )
    if not changed:
        raise ValidationError({"state": ["Only a failed delivery can be dismissed."]})
    delivery.refresh_from_db()
    return delivery
