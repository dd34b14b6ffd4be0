"""Worker heartbeats: each worker's last sign of life, read by `GET /health/`."""

from django.utils import timezone

from .models import WorkerHeartbeat


def record_heartbeat(*, hostname: str) -> WorkerHeartbeat:
    """Upsert this worker's heartbeat row with the current time."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"beat_at": timezone.now()})
    return heartbeat
