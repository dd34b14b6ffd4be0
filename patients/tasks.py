"""The patients app's Celery task: the checkpoint-state sweep, ticked by its own beat entry. It takes an
optional `now` (beat passes none; `demo_clock` passes the moment it simulates) and returns the counts."""

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from . import services


@shared_task
def sweep_checkpoints_task(now: datetime | None = None) -> dict[str, int]:
    return services.sweep_checkpoint_states(now=now or timezone.now())
