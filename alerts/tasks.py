"""The alerts app's Celery tasks: each takes ids or a moment, calls one service, and at most decides
on a retry.

The import rule (it keeps the module graph free of circles): this module imports the services, and
no service imports this module. A service that hands work to the worker enqueues the task by its
name, `current_app.send_task("alerts.tasks.deliver_task", ...)` (see `alerts.outbox.enqueue_deliveries`),
never by importing the task object.

Each sweep is a task of its own with its own entry in `settings.CELERY_BEAT_SCHEDULE`, so a sweep
that fails leaves the others running. A sweep task takes an optional `now`: beat passes none (the
current time), the `demo_clock` command passes the moment it simulates. It returns what its service
returns (results are not stored; the demo clock reports them).
"""

from datetime import datetime

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready
from django.utils import timezone

from . import checkins, digests, escalation, heartbeats, outbox, reminders, webhooks
from .channels import CHANNELS


@shared_task
def sweep_escalations_task(now: datetime | None = None) -> int:
    return escalation.sweep_escalations(now=now or timezone.now())


@shared_task
def sweep_checkpoint_webhooks_task(now: datetime | None = None) -> int:
    return webhooks.sweep_checkpoint_webhooks(now=now or timezone.now())


@shared_task
def sweep_reminders_task(now: datetime | None = None) -> int:
    return reminders.sweep_reminders(now=now or timezone.now())


@shared_task
def sweep_checkins_task(now: datetime | None = None) -> dict[str, int]:
    return checkins.sweep_checkins(now=now or timezone.now())


@shared_task
def sweep_digests_task(now: datetime | None = None) -> int:
    return digests.sweep_digests(now=now or timezone.now())


@shared_task
def sweep_deliveries_task(now: datetime | None = None) -> int:
    return outbox.sweep_deliveries(now=now or timezone.now())


@shared_task
def deliver_task(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        outcome = outbox.deliver(delivery_id=delivery_id)
        if outcome.retry_in is not None:
            deliver_task.apply_async(([delivery_id],), countdown=outcome.retry_in)


@shared_task
def deliver_webhooks_task(delivery_ids: list[int]) -> None:
    """Webhook deliveries, on the webhook queue (settings.CELERY_TASK_ROUTES) and its own worker, so
    that a slow receiver never holds a worker that sends pages."""
    for delivery_id in delivery_ids:
        outcome = outbox.deliver(delivery_id=delivery_id)
        if outcome.retry_in is not None:
            deliver_webhooks_task.apply_async(([delivery_id],), countdown=outcome.retry_in)


@shared_task(bind=True)
def record_heartbeat_task(self) -> None:
    """Only a worker running this says a worker is alive: a call in-process (the demo clock runs
    the whole beat schedule so) has no worker hostname and records nothing."""
    if self.request.hostname:
        heartbeats.record_heartbeat(hostname=self.request.hostname)


@worker_ready.connect
def record_heartbeat_on_start(sender, **kwargs) -> None:
    """A fresh worker reports at once instead of waiting for beat's first tick."""
    heartbeats.record_heartbeat(hostname=sender.hostname)


@worker_process_shutdown.connect
def close_kept_mail_connection(**kwargs) -> None:
    """Say QUIT to the mail server rather than drop the kept connection when a pool process ends."""
    CHANNELS["email"].close()
