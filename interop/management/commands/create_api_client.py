"""Create an API client for one EHR integration and print its token (shown this once only)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from interop.auth import create_api_client
from patients.models import Clinic


class Command(BaseCommand):
    help = "Create an API client scoped to clinics and read/write; prints the bearer token once."

    def add_arguments(self, parser):
        parser.add_argument("--clinic", action="append", required=True, help="Clinic slug (repeat for several).")
        parser.add_argument("--scopes", default="read", help="Comma-separated: read, write (default: read).")
        parser.add_argument("--name", default="", help="A name for the integration, e.g. the EHR vendor.")

    def handle(self, *args, clinic: list[str], scopes: str, name: str, **options):
        clinics = list(Clinic.objects.filter(slug__in=clinic))
        missing = sorted(set(clinic) - {c.slug for c in clinics})
        if missing:
            raise CommandError(f"Unknown clinic slug(s): {', '.join(missing)}.")
        try:
            client, token = create_api_client(
                name=name or f"EHR for {', '.join(clinic)}",
                clinics=clinics,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stderr.write(f"Created API client #{client.pk} ({', '.join(client.scopes)}). The token is shown once:")
        self.stdout.write(token)
