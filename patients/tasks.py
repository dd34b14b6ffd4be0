from celery import shared_task
from django.utils import timezone

from . import retention, services


@shared_task
def sweep_checkpoints_task() -> None:
    services.sweep_checkpoint_states(now=timezone.now())


@shared_task
def sweep_retention_task() -> None:
    retention.purge_expired(now=timezone.now())
