from celery import shared_task
from celery.signals import worker_ready
from django.utils import timezone

from . import alerting, outbox, services


@shared_task
def sweep_outbox_task() -> None:
    now = timezone.now()
    alerting.sweep_escalations(now=now)
    alerting.sweep_checkpoint_webhooks(now=now)
    services.sweep_reminders(now=now)
    services.sweep_checkins(now=now)
    services.sweep_digests(now=now)
    outbox.sweep_deliveries(now=now)


@shared_task
def deliver_task(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        outcome = outbox.deliver(delivery_id=delivery_id)
        if outcome.retry_in is not None:
            deliver_task.apply_async(([delivery_id],), countdown=outcome.retry_in)


@shared_task(bind=True)
def record_heartbeat_task(self) -> None:
    services.record_heartbeat(hostname=self.request.hostname or "unknown")


@worker_ready.connect
def record_heartbeat_on_start(sender, **kwargs) -> None:
    """A fresh worker reports at once instead of waiting for beat's first tick."""
    services.record_heartbeat(hostname=sender.hostname)
