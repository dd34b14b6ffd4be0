"""Webhook deliveries: one signed event per active endpoint of the clinic that listens to it.

Alert events (raised, tier raised, escalated, acknowledged, resolved) are written in the same
transaction as the AlertEvent they report. Checkpoint transitions are relayed by a sweep from the
CheckpointEvent rows that the patients app writes with each transition.

The body is frozen in the Delivery row when it is written (`context["body"]`): the event's own time,
the state that event produced, and a `sequence` that increases with each event of the same alert (or
checkpoint), so that a receiver applies an event only if its sequence is above the last it applied.
Every attempt sends these bytes under the same `webhook-id`.
"""

from datetime import datetime

from django.db import transaction

from patients.models import CheckpointEvent

from .models import Alert, AlertEvent, Delivery, DeliveryKind, WebhookEndpoint
from .outbox import enqueue_deliveries
from .webhook_bodies import alert_data, checkpoint_data, frozen_body

CHECKPOINT_WEBHOOK_EVENTS = {
    "completed": "checkpoint.completed",
    "missed": "checkpoint.missed",
    "cancelled": "checkpoint.cancelled",
    "rescheduled": "checkpoint.rescheduled",
}


def write_alert_webhooks(alert: Alert, event: str, cause: AlertEvent, *, now: datetime) -> None:
    """One webhook Delivery per active endpoint of the alert's clinic that listens to `event`,
    enqueued on commit."""
    endpoints = WebhookEndpoint.objects.filter(clinic=alert.clinic, active=True)
    body = None
    deliveries = []
    for endpoint in endpoints:
        if not endpoint.events or event in endpoint.events:
            body = body or frozen_body(event, at=cause.at, data=alert_data(alert, sequence=cause.pk))
            deliveries.append(
                _delivery(endpoint, event, reports="alert_event", row_id=cause.pk, now=now, body=body, alert=alert)
            )
    deliveries = Delivery.objects.bulk_create(deliveries)
    enqueue_deliveries([delivery.pk for delivery in deliveries], webhooks=True)


def _delivery(
    endpoint: WebhookEndpoint, event: str, *, reports: str, row_id: int, now: datetime, body: str, **about
) -> Delivery:
    """The delivery of `event` to `endpoint`, reporting row `row_id` (`reports` names its kind:
    "alert_event" or "checkpoint_event"), with its frozen `body`; the cause, unique per endpoint, is
    the event and the row."""
    return Delivery(
        kind=DeliveryKind.WEBHOOK,
        channel="webhook",
        cause=f"{event}:{row_id}",
        recipient=f"endpoint:{endpoint.pk}",
        clinic_id=endpoint.clinic_id,
        endpoint=endpoint,
        next_attempt_at=now,
        context={"event": event, reports: row_id, "body": body},
        **about,
    )


def sweep_checkpoint_webhooks(*, now: datetime, batch_size: int = 500) -> int:
    """Relay checkpoint transitions (CheckpointEvent rows, written with the transition) to each
    clinic's webhook endpoints. Each endpoint keeps a watermark of the last event queued, advanced in
    the same transaction as the deliveries; the cause is unique per event and endpoint. Returns the
    number of deliveries written."""
    written = 0
    for endpoint_id in WebhookEndpoint.objects.filter(active=True).values_list("id", flat=True):
        with transaction.atomic():
            # An endpoint another sweeper is relaying for is left to it.
            endpoint = WebhookEndpoint.objects.select_for_update(skip_locked=True).filter(pk=endpoint_id).first()
            if endpoint is not None:
                written += _relay_checkpoint_events(endpoint, now=now, batch_size=batch_size)
    return written


def _relay_checkpoint_events(endpoint: WebhookEndpoint, *, now: datetime, batch_size: int) -> int:
    """Write the deliveries of the next `batch_size` checkpoint events for the locked `endpoint` and
    move its watermark past them."""
    events = list(
        CheckpointEvent.objects.filter(
            id__gt=endpoint.checkpoint_events_after,
            kind__in=CHECKPOINT_WEBHOOK_EVENTS,
            checkpoint__procedure__patient__clinic_id=endpoint.clinic_id,
        )
        .select_related("checkpoint__procedure")
        .order_by("id")[:batch_size]
    )
    if not events:
        return 0
    wanted = [e for e in events if not endpoint.events or CHECKPOINT_WEBHOOK_EVENTS[e.kind] in endpoint.events]
    deliveries = Delivery.objects.bulk_create(
        _delivery(
            endpoint,
            CHECKPOINT_WEBHOOK_EVENTS[e.kind],
            reports="checkpoint_event",
            row_id=e.pk,
            now=now,
            body=frozen_body(CHECKPOINT_WEBHOOK_EVENTS[e.kind], at=e.at, data=checkpoint_data(e)),
            checkpoint_id=e.checkpoint_id,
        )
        for e in wanted
    )
    endpoint.checkpoint_events_after = events[-1].pk
    endpoint.save(update_fields=["checkpoint_events_after"])
    enqueue_deliveries([delivery.pk for delivery in deliveries], webhooks=True)
    return len(deliveries)
