"""The patients app's Celery tasks: the checkpoint-state, week-16 medication and retention sweeps, each
ticked by its own beat entry. Each takes an optional `now` (beat passes none; `demo_clock` passes the
moment it simulates) and returns the counts."""

from dataclasses import asdict
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from . import retention, services


@shared_task
def sweep_checkpoints_task(now: datetime | None = None) -> dict[str, int]:
    return services.sweep_checkpoint_states(now=now or timezone.now())


@shared_task
def sweep_medication_deadlines_task(now: datetime | None = None) -> int:
    return services.sweep_medication_deadlines(now=now or timezone.now())


@shared_task
def sweep_retention_task(now: datetime | None = None) -> dict[str, int]:
    return asdict(retention.purge_expired(now=now or timezone.now()))
