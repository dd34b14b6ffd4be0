"""What is kept only for a while, deleted by the hourly retention sweep (beat entry "sweep-retention"):
expired staff sessions (Django's `clearsessions`), idempotency records (stored API responses, which hold
patient data) after IDEMPOTENCY_RETENTION, import previews (uploaded files) and staff enrolment links once expired."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings

from .models import EnrolmentLink, IdempotencyRecord, ImportPreview

# A client retrying a POST later than this gets a new request, not the stored answer. [DESIGN]
IDEMPOTENCY_RETENTION = timedelta(hours=24)


@dataclass(frozen=True)
class Purged:
    idempotency_records: int
    import_previews: int
    enrolment_links: int = 0


def purge_expired(*, now: datetime) -> Purged:
    """Delete everything past its retention at `now`; safe to run at any time and any number of times."""
    # Exactly what `manage.py clearsessions` does, for whichever session engine is configured.
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    records, _ = IdempotencyRecord.objects.filter(created_at__lt=now - IDEMPOTENCY_RETENTION).delete()
    previews, _ = ImportPreview.objects.filter(expires_at__lte=now).delete()
    links, _ = EnrolmentLink.objects.filter(expires_at__lte=now).delete()
    return Purged(idempotency_records=records, import_previews=previews, enrolment_links=links)
