from celery import shared_task
from django.utils import timezone

from . import services


@shared_task
def sweep_checkpoints_task() -> None:
    services.sweep_checkpoint_states(now=timezone.now())
