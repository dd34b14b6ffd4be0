"""Advance the demo through simulated time: run every sweep hour by hour and deliver what they write.

Only for the demo (`make run`): it moves checkpoints into the future it simulates.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from alerts.alerting import sweep_escalations
from alerts.models import Delivery, DeliveryState
from alerts.outbox import deliver
from alerts.services import sweep_checkins, sweep_digests, sweep_reminders
from patients.services import sweep_checkpoint_states


class Command(BaseCommand):
    help = "Simulate the next DAYS days of sweeps (hourly) and deliver the reminders and digests they write."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30, help="How many days to advance (1–366).")

    def handle(self, *args, days: int, **options):
        if not 1 <= days <= 366:
            raise CommandError("--days must be between 1 and 366.")
        start = timezone.now().replace(minute=0, second=0, microsecond=0)
        totals = {"due": 0, "missed": 0, "reminders": 0, "invitations": 0, "digests": 0, "sent": 0, "failed": 0}
        for hour in range(days * 24 + 1):
            now = start + timedelta(hours=hour)
            states = sweep_checkpoint_states(now=now)
            totals["due"] += states["due"]
            totals["missed"] += states["missed"]
            totals["reminders"] += sweep_reminders(now=now)
            totals["invitations"] += sweep_checkins(now=now)["invited"]
            sweep_escalations(now=now)
            totals["digests"] += sweep_digests(now=now)
            for delivery_id in Delivery.objects.filter(state=DeliveryState.PENDING).values_list("id", flat=True):
                outcome = deliver(delivery_id=delivery_id)
                totals["sent"] += outcome.state == DeliveryState.SENT
                totals["failed"] += outcome.state == DeliveryState.FAILED
        self.stdout.write(
            f"Advanced {days} days from {start:%Y-%m-%d %H:%M} UTC: {totals['due']} checkpoints became due, "
            f"{totals['missed']} missed; {totals['reminders']} reminders, {totals['invitations']} check-in invitations "
            f"and {totals['digests']} digests written; "
            f"{totals['sent']} e-mails sent, {totals['failed']} failed."
        )
