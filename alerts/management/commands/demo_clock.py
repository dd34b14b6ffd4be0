"""Advance the demo through simulated time: run the beat schedule hour by hour and deliver what it writes.

Each simulated hour runs every entry of `settings.CELERY_BEAT_SCHEDULE`, in its order, in this
process, handing the simulated moment to each task that takes `now`; then it sends every pending
delivery, as the worker would. A task that fails is reported and the other entries still run.

Only for the demo (`make run`): it moves checkpoints into the future it simulates.
"""

import inspect
from collections import Counter
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from alerts.models import Delivery, DeliveryState
from alerts.outbox import deliver


class Entry:
    """One beat schedule entry, run as beat's worker would run it, but in this process."""

    def __init__(self, name: str, spec: dict):
        self.name, self.task = name, current_app.tasks[spec["task"]]
        self.args, self.kwargs = tuple(spec.get("args", ())), dict(spec.get("kwargs", {}))
        self.takes_now = "now" in inspect.signature(self.task.run).parameters
        self.ran, self.failed, self.totals = 0, 0, Counter()

    def run(self, now: datetime) -> Exception | None:
        try:
            result = self.task(*self.args, **self.kwargs, **({"now": now} if self.takes_now else {}))
        except Exception as exc:  # one failing sweep must not stop the others
            self.failed += 1
            return exc
        self.ran += 1
        if isinstance(result, dict):
            self.totals.update(result)
        elif isinstance(result, int):
            self.totals["written"] += result
        return None

    def summary(self) -> str:
        counts = ", ".join(f"{key} {value}" for key, value in self.totals.items())
        failed = f", failed {self.failed} times" if self.failed else ""
        clock = "" if self.takes_now else " (at the real time: its task takes no `now`)"
        return f"{self.name} ran {self.ran} times{failed}{clock}" + (f": {counts}" if counts else "")


def beat_schedule() -> list[Entry]:
    """The entries of the beat schedule, each with its registered task."""
    current_app.loader.import_default_modules()  # the apps' tasks modules, as a worker loads them
    return [Entry(name, spec) for name, spec in settings.CELERY_BEAT_SCHEDULE.items()]


class Command(BaseCommand):
    help = "Simulate the next DAYS days of the beat schedule (hourly) and deliver the messages it writes."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30, help="How many days to advance (1–366).")

    def handle(self, *args, days: int, **options):
        if not 1 <= days <= 366:
            raise CommandError("--days must be between 1 and 366.")
        start = timezone.now().replace(minute=0, second=0, microsecond=0)
        entries = beat_schedule()
        sent = Counter()
        for hour in range(days * 24 + 1):
            now = start + timedelta(hours=hour)
            for entry in entries:
                error = entry.run(now)
                if error is not None:
                    self.stderr.write(f"{now:%Y-%m-%d %H:%M}: {entry.name} failed: {type(error).__name__}: {error}")
            for delivery_id in Delivery.objects.filter(state=DeliveryState.PENDING).values_list("id", flat=True):
                sent[deliver(delivery_id=delivery_id, now=now).state] += 1
        self.stdout.write(
            f"Advanced {days} days from {start:%Y-%m-%d %H:%M} UTC: "
            + "; ".join(entry.summary() for entry in entries)
            + f"; {sent[DeliveryState.SENT]} e-mails sent, {sent[DeliveryState.FAILED]} failed."
        )
