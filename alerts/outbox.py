"""The outbox: Delivery rows are claimed, sent and marked by id; lost ones are found again by a sweep.

Every message is first a Delivery row written in the same transaction as its cause. A task claims
the row by a conditional UPDATE (pending and due → sending), sends, and marks it sent, so two workers
never send one row and a row backing off is never sent early. While a send is in flight the worker
process renews the claim's heartbeat; a claim not renewed for its kind's lease (pages: seconds) was
lost with its worker and is handed out again, so a send killed in flight is repeated once at most.
A send whose end-of-DATA answer never came may have been delivered: it is re-sent once, byte for
byte the same message (same Message-ID), after a long wait, and never again after that.
"""

import logging
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_otp import user_has_device

from patients.models import Clinic, PatientStatus
from patients.rows import claimed_batches, transition

from . import messages
from .channels import CHANNELS, DeliveryError, EndpointGone
from .models import (
    Alert,
    AlertEvent,
    AlertState,
    Delivery,
    DeliveryKind,
    DeliveryState,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # then the delivery is marked failed for a coordinator [DESIGN]
BACKOFF_BASE_SECONDS = settings.DELIVERY_BACKOFF_BASE_SECONDS
BACKOFF_MAX_SECONDS = settings.DELIVERY_BACKOFF_MAX_SECONDS  # below the broker's visibility timeout
SENDING_LEASE = timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)  # reminders, check-ins, digests, webhooks
PAGE_LEASE = timedelta(seconds=settings.DELIVERY_PAGE_LEASE_SECONDS)  # alert pages: an EMERGENCY cannot wait
HEARTBEAT_SECONDS = settings.DELIVERY_HEARTBEAT_SECONDS
OUTCOME_UNKNOWN_WAIT = timedelta(seconds=settings.DELIVERY_OUTCOME_UNKNOWN_WAIT_SECONDS)
ENQUEUE_BATCH = 100  # delivery ids per task
# Sent by name, so that this module need not import the tasks module that imports it (alerts/tasks.py).
DELIVER_TASK = "alerts.tasks.deliver_task"
# Webhooks have a task of their own, routed to their own queue (settings.CELERY_TASK_ROUTES).
DELIVER_WEBHOOKS_TASK = "alerts.tasks.deliver_webhooks_task"
WEBHOOK_BACKOFF_MAX = settings.WEBHOOK_BACKOFF_MAX_SECONDS
WEBHOOK_RETRY_HORIZON = timedelta(hours=settings.WEBHOOK_RETRY_HORIZON_HOURS)


def lease(kind: str) -> timedelta:
    return PAGE_LEASE if kind == DeliveryKind.ALERT else SENDING_LEASE


def enqueue_deliveries(ids: list[int], *, webhooks: bool = False, countdown: int = 0) -> None:
    """Hand delivery ids to the worker once the current transaction commits (webhook deliveries, all
    of one kind, to the webhook queue), `countdown` seconds later for rows that wait (a day's patient
    message, at most minutes). This is only the fast path: if the broker is unreachable the
    failure is logged and the committed write still stands, and the delivery sweep hands the rows
    out when the broker is back."""
    task = DELIVER_WEBHOOKS_TASK if webhooks else DELIVER_TASK
    for start in range(0, len(ids), ENQUEUE_BATCH):

        def hand_out(batch=ids[start : start + ENQUEUE_BATCH]) -> None:
            try:
                current_app.send_task(task, args=[batch], ignore_result=True, countdown=countdown or None)
            except Exception:
                # Not handed out: the next sweep takes these rows at once, without waiting for a lease.
                Delivery.objects.filter(id__in=batch, state=DeliveryState.PENDING).update(enqueued_at=None)
                raise

        transaction.on_commit(hand_out, robust=True)


def backoff_seconds(attempts: int, *, webhook: bool = False) -> int:
    """Exponential backoff with jitter, capped below the broker's visibility timeout (webhooks: at
    WEBHOOK_BACKOFF_MAX_SECONDS, their longer waits handed out by the sweep)."""
    cap = WEBHOOK_BACKOFF_MAX if webhook else BACKOFF_MAX_SECONDS
    ceiling = min(cap, BACKOFF_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 30))
    return random.randint(ceiling // 2, ceiling)


# What building and sending each kind of message reads, fetched with the row in one query
# (a page reads its own, see PAGE_SQL).
RELATED = {
    DeliveryKind.WEBHOOK: ("endpoint",),
    DeliveryKind.REMINDER: ("clinic", "checkpoint__procedure__patient"),
    DeliveryKind.CHECKIN: ("clinic", "checkin__patient", "checkin__procedure"),
    DeliveryKind.DIGEST: ("clinic",),
    DeliveryKind.ENROLMENT: ("recipient_user",),
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
           d.recipient_user_id AS page_recipient_user_id, d.attempts AS page_attempts,
           d.message AS page_message, d.unknown_outcomes AS page_unknown_outcomes,
           d.created_at AS page_created_at
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
        message=alert.page_message,
        unknown_outcomes=alert.page_unknown_outcomes,
        created_at=alert.page_created_at,
        state=DeliveryState.SENDING,
        clinic=Clinic(id=alert.clinic_id, name=alert.page_clinic_name),
        alert=alert,
    )


def _still_wanted(delivery: Delivery) -> bool:
    if delivery.kind == DeliveryKind.ALERT:
        return delivery.alert.state == AlertState.OPEN
    if delivery.kind in (DeliveryKind.REMINDER, DeliveryKind.CHECKIN):
        # A day's message goes while one of its items is still wanted, with those only.
        patient, checkpoints, checkins = messages.patient_items(delivery)
        return bool(checkpoints or checkins) and patient.status == PatientStatus.ACTIVE and patient.email_consent
    if delivery.kind == DeliveryKind.ENROLMENT:
        # Not sent to an account deactivated or enrolled meanwhile.
        user = delivery.recipient_user
        return user is not None and user.is_active and not user_has_device(user, confirmed=True)
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
    """pending and due → sending, attempt counted, in one statement that also returns the delivery's
    kind (so that the row can then be read with what its kind needs); None if it was not pending, or
    is backing off until a later `next_attempt_at`."""
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE alerts_delivery SET state = %s, claimed_at = %s, heartbeat_at = NULL, "
            "attempts = attempts + 1, updated_at = %s "
            "WHERE id = %s AND state = %s AND next_attempt_at <= %s RETURNING kind",
            [DeliveryState.SENDING, at, at, delivery_id, DeliveryState.PENDING, at],
        )
        row = cursor.fetchone()
    return row[0] if row else None


class _Heartbeat:
    """One thread per worker process renews `heartbeat_at` of the rows this process is sending, so
    that a live send, however slow, keeps its claim, and a dead worker's claim goes stale in seconds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sending: set[int] = set()
        self.thread: threading.Thread | None = None

    @contextmanager
    def renewing(self, delivery_id: int):
        with self.lock:
            self.sending.add(delivery_id)
            if self.thread is None or not self.thread.is_alive():  # none yet in this (forked) process
                self.thread = threading.Thread(target=self._run, name="delivery-heartbeat", daemon=True)
                self.thread.start()
        try:
            yield
        finally:
            with self.lock:
                self.sending.discard(delivery_id)

    def _run(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self.lock:
                ids = list(self.sending)
            if not ids:
                connection.close()  # no send in flight: hold no database connection meanwhile
                continue
            try:
                Delivery.objects.filter(id__in=ids, state=DeliveryState.SENDING).update(heartbeat_at=timezone.now())
            except Exception:  # the database is away: the lease decides, as for a dead worker
                logger.warning("delivery heartbeat not recorded", exc_info=True)
                connection.close()


HEARTBEAT = _Heartbeat()


def deliver(*, delivery_id: int, now: datetime | None = None) -> Outcome:
    """Claim one pending, due delivery, send it, and record the result.

    A transient failure puts the row back to pending with a backed-off `next_attempt_at`; a permanent
    one, or the last attempt, marks it failed for a coordinator. A message whose cause went away
    meanwhile (checkpoint completed, check-in answered, alert acknowledged) is cancelled, not sent.
    The claim commits before the send, so a worker killed mid-send leaves the row `sending` with its
    attempt counted, for the sweep to hand out again once its lease has run out. `now` is the moment
    of the attempt (the demo clock passes its simulated one); the worker passes none.
    """
    now = now or timezone.now()
    kind = _claim(delivery_id, now=now)
    if kind is None:
        return Outcome("skipped")
    mine = Delivery.objects.filter(id=delivery_id, claimed_at=now)  # still sending under this claim
    if kind == DeliveryKind.WEBHOOK:
        return _deliver_webhook(delivery_id, mine)
    # Sent and recorded in one transaction. A failure is recorded in it too, so that the link made for
    # a message the server may have kept stays valid, and the message is kept for an identical retry.
    with transaction.atomic(), HEARTBEAT.renewing(delivery_id):
        delivery = _fetch(delivery_id, kind)
        if not _still_wanted(delivery):
            transition(
                mine, DeliveryState.SENDING, DeliveryState.CANCELLED, last_error="no longer wanted", message=None
            )
            return Outcome(DeliveryState.CANCELLED)
        message = messages.build(delivery) if delivery.message is None else messages.stored(delivery)
        try:
            CHANNELS[delivery.channel].send(message)
        except DeliveryError as exc:
            return _record_failure(delivery, mine, exc, getattr(message, "raw", None))
        transition(mine, DeliveryState.SENDING, DeliveryState.SENT, sent_at=timezone.now(), last_error="", message=None)
        return Outcome(DeliveryState.SENT)


def _deliver_webhook(delivery_id: int, mine) -> Outcome:
    """A webhook is sent outside any transaction: its claim has committed, the POST holds no lock and
    no open transaction however slow the receiver (it has one deadline), then the outcome is recorded
    by a conditional UPDATE on the claim. Its body was frozen when the event happened."""
    with HEARTBEAT.renewing(delivery_id):
        delivery = _fetch(delivery_id, DeliveryKind.WEBHOOK)
        if not delivery.endpoint.active:
            why = f"endpoint disabled: {delivery.endpoint.disabled_reason}" if delivery.endpoint.disabled_reason else ""
            transition(mine, DeliveryState.SENDING, DeliveryState.CANCELLED, last_error=why or "endpoint turned off")
            return Outcome(DeliveryState.CANCELLED)
        try:
            CHANNELS[delivery.channel].send(messages.build(delivery))
        except DeliveryError as exc:
            with transaction.atomic():
                if isinstance(exc, EndpointGone):
                    _disable_endpoint(delivery.endpoint, f"delivery #{delivery.pk}: {exc}")
                return _record_failure(delivery, mine, exc, None)
        transition(mine, DeliveryState.SENDING, DeliveryState.SENT, sent_at=timezone.now(), last_error="")
        return Outcome(DeliveryState.SENT)


def _disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to `endpoint` (its pending deliveries are cancelled when their turn comes), saying why."""
    endpoint.active, endpoint.disabled_at, endpoint.disabled_reason = False, timezone.now(), reason[:300]
    endpoint.save(update_fields=["active", "disabled_at", "disabled_reason"])
    logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


def _retries_exhausted(delivery: Delivery, now: datetime) -> bool:
    if delivery.kind == DeliveryKind.WEBHOOK:
        return now >= delivery.created_at + WEBHOOK_RETRY_HORIZON
    return delivery.attempts >= MAX_ATTEMPTS


def _record_failure(delivery: Delivery, mine, exc: DeliveryError, raw: bytes | None) -> Outcome:
    error = str(exc)[:300]
    exhausted = _retries_exhausted(delivery, timezone.now())
    if exc.permanent or exhausted or (exc.unknown and delivery.unknown_outcomes):
        if exc.unknown and delivery.unknown_outcomes:
            error = f"{error}; not re-sent again, the recipient may have it twice"[:300]
        transition(mine, DeliveryState.SENDING, DeliveryState.FAILED, last_error=error, message=None)
        _failed_for_good(delivery, error)
        return Outcome(DeliveryState.FAILED)
    now = timezone.now()
    if exc.unknown:
        # The server may have the message: one identical retry, after the RFC 5321 DATA wait, handed
        # out by the sweep (no countdown task that long).
        transition(
            mine,
            DeliveryState.SENDING,
            DeliveryState.PENDING,
            last_error=error,
            claimed_at=None,
            next_attempt_at=now + OUTCOME_UNKNOWN_WAIT,
            enqueued_at=None,
            unknown_outcomes=delivery.unknown_outcomes + 1,
            message=raw,
        )
        logger.info("delivery %s attempt %s outcome unknown, one retry at %s", delivery.pk, delivery.attempts, now)
        return Outcome(DeliveryState.PENDING)
    wait = backoff_seconds(delivery.attempts, webhook=delivery.kind == DeliveryKind.WEBHOOK)
    due = now + timedelta(seconds=wait)
    if delivery.kind == DeliveryKind.WEBHOOK:
        due = min(due, delivery.created_at + WEBHOOK_RETRY_HORIZON)  # the last attempt, at the horizon
        wait = max(0, int((due - now).total_seconds()))
    # A wait longer than the broker may hold a countdown task is handed out by the sweep when due.
    by_task = wait <= BACKOFF_MAX_SECONDS
    transition(
        mine,
        DeliveryState.SENDING,
        DeliveryState.PENDING,
        last_error=error,
        claimed_at=None,
        next_attempt_at=due,
        enqueued_at=due if by_task else None,  # the retry task below is handed out for that moment
        message=raw,
    )
    logger.info("delivery %s attempt %s failed, retry in %s s: %s", delivery.pk, delivery.attempts, wait, error)
    return Outcome(DeliveryState.PENDING, retry_in=wait if by_task else None)


def sweep_deliveries(*, now: datetime, batch_size: int = 1000) -> int:
    """Find deliveries whose send or task was lost and hand them out again, once.

    A row in `sending` whose claim has not been renewed for its kind's lease goes back to pending (its
    worker died mid-send). A pending row whose attempt is due is enqueued if it was never handed out
    (the broker was down), or if its last hand-out is older than its kind's lease (the task was lost
    with the broker or a worker); enqueuing stamps `enqueued_at`, so the next sweep leaves it alone.
    Returns the number enqueued.
    """
    transition(
        Delivery.objects.filter(_older_than_lease("claimed_at", "heartbeat_at", now), state=DeliveryState.SENDING),
        DeliveryState.SENDING,
        DeliveryState.PENDING,
        claimed_at=None,
        heartbeat_at=None,
        enqueued_at=None,  # its attempt was due when it was claimed: the ready query below takes it
        updated_at=now,
    )
    enqueued = 0
    lost = Q(enqueued_at__isnull=True) | _older_than_lease("enqueued_at", None, now)
    ready = Delivery.objects.ready(at=now).filter(lost).order_by("next_attempt_at").values_list("id", "kind")
    for rows in claimed_batches(ready, batch_size):
        Delivery.objects.filter(id__in=[row[0] for row in rows]).update(enqueued_at=now, updated_at=now)
        enqueue_deliveries([i for i, kind in rows if kind != DeliveryKind.WEBHOOK])
        enqueue_deliveries([i for i, kind in rows if kind == DeliveryKind.WEBHOOK], webhooks=True)
        enqueued += len(rows)
    return enqueued


def _older_than_lease(field: str, renewed: str | None, now: datetime) -> Q:
    """`field` (or `renewed`, once set) older than the lease of the row's kind."""
    condition = Q()
    for kinds, span in ((Q(kind=DeliveryKind.ALERT), PAGE_LEASE), (~Q(kind=DeliveryKind.ALERT), SENDING_LEASE)):
        stale = Q(**{f"{field}__lt": now - span})
        if renewed:
            stale = Q(**{f"{renewed}__isnull": True}) & stale | Q(**{f"{renewed}__lt": now - span})
        condition |= kinds & stale
    return condition


def retry_delivery(*, delivery: Delivery, by=None) -> Delivery:
    """A coordinator's retry of a failed delivery: pending again, attempts from zero, sent now."""
    now = timezone.now()
    with transaction.atomic():
        changed = transition(
            Delivery.objects.filter(pk=delivery.pk),
            DeliveryState.FAILED,
            DeliveryState.PENDING,
            attempts=0,
            unknown_outcomes=0,
            next_attempt_at=now,
            claimed_at=None,
            enqueued_at=now,
            updated_at=now,
        )
        if not changed:
            raise ValidationError({"state": ["Only a failed delivery can be retried."]})
        enqueue_deliveries([delivery.pk], webhooks=delivery.kind == DeliveryKind.WEBHOOK)
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
        message=None,
    )
    if not changed:
        raise ValidationError({"state": ["Only a failed delivery can be dismissed."]})
    delivery.refresh_from_db()
    return delivery
