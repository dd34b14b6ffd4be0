"""Create the demo clinic, its staff and about twenty patients. Safe to run again: nothing is duplicated."""

from django.core.management.base import BaseCommand

from patients import demo


class Command(BaseCommand):
    help = "Create (or leave as is) the demo clinic, a demo coordinator login and demo patients."

    def handle(self, *args, **options):
        result = demo.seed_demo()
        self.stdout.write(
            f"Demo clinic '{result.clinic.slug}': {result.patients_created} patients created, "
            f"{result.patients_existing} already there."
        )
