"""What `make run` runs before it starts the web server: the demo's alerts and call tasks (once), then
every sweep of the beat schedule once, so that the worklist is filled on the first visit instead of
after beat's first tick. Only for the demo (`make run`)."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from alerts.demo import seed_demo_alerts
from alerts.management.commands.demo_clock import beat_schedule


class Command(BaseCommand):
    help = "Add the demo's alerts and call tasks (once), then run every beat sweep once now."

    def handle(self, *args, **options):
        raised = seed_demo_alerts()
        now = timezone.now()
        failed = [entry.name for entry in beat_schedule() if entry.run(now) is not None]
        self.stdout.write(
            f"Demo: {raised} alerts raised; first sweep done"
            + (f" ({', '.join(failed)} failed)" if failed else "")
            + "."
        )
