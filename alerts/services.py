"""Writes for the alerts app. Each function says which rows change and what is enqueued."""

from django.utils import timezone

from .models import WorkerHeartbeat


def record_heartbeat(*, hostname: str) -> WorkerHeartbeat:
    """Upsert this worker's heartbeat row with the current time."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"beat_at": timezone.now()})
    return heartbeat
