"""Print a fresh check-in link for a demo patient, so the check-in form can be tried at once.

Only for the demo clinic of `make run`; real patients receive their links by e-mail.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import timezone

from alerts.models import CheckIn, CheckInLink, new_token
from patients.demo import DEMO_CLINIC_SLUG
from patients.models import Patient
from patients.protocol import get_protocol


class Command(BaseCommand):
    help = "Create a check-in for a demo patient and print its link (demo clinic only)."

    def add_arguments(self, parser):
        parser.add_argument("--mrn", default="DEMO0002", help="Demo patient MRN (default DEMO0002).")

    def handle(self, *args, mrn: str, **options):
        patient = Patient.objects.filter(clinic__slug=DEMO_CLINIC_SLUG, mrn=mrn).first()
        if patient is None:
            raise CommandError(f"No demo patient {mrn}: run `make run` (or `manage.py seed_demo`) first.")
        procedure = patient.procedures.first()
        checkin = CheckIn.objects.create(patient=patient, procedure=procedure, reason="demo", next_action_at=None)
        raw, digest = new_token()
        lifetime = get_protocol(procedure.protocol_version or patient.clinic.protocol_version).link_lifetime("checkin")
        CheckInLink.objects.create(checkin=checkin, token_hash=digest, expires_at=timezone.now() + lifetime)
        self.stdout.write(settings.SITE_URL + reverse("checkin-start", args=[raw]))
