from celery import shared_task
from celery.signals import worker_ready

from . import services


@shared_task(bind=True)
def record_heartbeat_task(self) -> None:
    services.record_heartbeat(hostname=self.request.hostname or "unknown")


@worker_ready.connect
def record_heartbeat_on_start(sender, **kwargs) -> None:
    """A fresh worker reports at once instead of waiting for beat's first tick."""
    services.record_heartbeat(hostname=sender.hostname)
