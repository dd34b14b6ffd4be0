from celery import shared_task

from . import services


@shared_task(bind=True)
def record_heartbeat_task(self) -> None:
    services.record_heartbeat(hostname=self.request.hostname or "unknown")
