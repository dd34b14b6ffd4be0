from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready
from django.utils import timezone

from . import alerting, outbox, services
from .channels import CHANNELS


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


@worker_process_shutdown.connect
def close_kept_mail_connection(**kwargs) -> None:
    """Say QUIT to the mail server rather than drop the kept connection when a pool process ends."""
    CHANNELS["email"].close()
