"""Webhook bodies, frozen when the event happens (alerts/webhooks.py writes them into the Delivery row).

`{"type", "timestamp", "data"}`: the event's own time, the state that event produced, and
`data.sequence`, which increases with each event of one alert (the AlertEvent's id) or checkpoint
(the CheckpointEvent's id). Ids, codes and states only, never a name, MRN or birth date.
"""

import json
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder

from patients.models import CheckpointEvent

from .models import Alert, AlertEvent, Delivery


def frozen_body(event: str, *, at: datetime, data: dict) -> str:
    """The JSON body sent on every attempt: ids, codes and states only, never a name, MRN or birth date."""
    payload = {"type": event, "timestamp": at.isoformat(), "data": data}
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))


def alert_data(alert: Alert, *, sequence: int) -> dict:
    """The alert as the event left it (callers pass the alert as written in the event's transaction)."""
    return {
        "alert": alert.pk,
        "sequence": sequence,
        "patient": alert.patient_id,
        "code": alert.code,
        "tier": alert.tier,
        "state": alert.state,
        "count": alert.count,
        "first_seen_at": alert.first_seen_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "protocol_version": alert.protocol_version,
    }


# The checkpoint's state right after each relayed transition (a rescheduled one stays open).
STATE_AFTER = {"completed": "completed", "missed": "missed", "cancelled": "cancelled"}


def checkpoint_data(event: CheckpointEvent) -> dict:
    checkpoint = event.checkpoint
    state = STATE_AFTER.get(event.kind) or (checkpoint.state if checkpoint.is_open else "scheduled")
    return {
        "checkpoint": checkpoint.pk,
        "sequence": event.pk,
        "patient": checkpoint.procedure.patient_id,
        "procedure": checkpoint.procedure_id,
        "code": checkpoint.code,
        "state": state,
        "window_start": checkpoint.window_start.isoformat(),
        "target_date": checkpoint.target_date.isoformat(),
        "window_end": checkpoint.window_end.isoformat(),
        "protocol_version": checkpoint.protocol_version,
    }


def body_of(delivery: Delivery) -> bytes:
    """The frozen body of a webhook delivery. A row written before bodies were frozen gets its body
    now, from its event row, and keeps it, so that its retries send the same bytes."""
    if "body" not in delivery.context:
        event_name = delivery.context["event"]
        if "checkpoint_event" in delivery.context:
            event = CheckpointEvent.objects.select_related("checkpoint__procedure").get(
                pk=delivery.context["checkpoint_event"]
            )
            body = frozen_body(event_name, at=event.at, data=checkpoint_data(event))
        else:
            event = AlertEvent.objects.get(pk=delivery.context["alert_event"])
            alert = Alert.objects.get(pk=event.alert_id)
            body = frozen_body(event_name, at=event.at, data=alert_data(alert, sequence=event.pk))
        delivery.context["body"] = body
        Delivery.objects.filter(pk=delivery.pk).update(context=delivery.context)
    return delivery.context["body"].encode()
