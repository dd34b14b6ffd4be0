"""Everything that reaches a person or a system, and the worker's own heartbeat."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by a beat-ticked task; /health/ reads the newest."""

    hostname = models.CharField(max_length=200, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
