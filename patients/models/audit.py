"""Audit trail for registry rows: every change is kept with who made it and through what.

`audit_trail()` is the `history` field of each audited model (django-simple-history); the stamp names
the source (admin, API, import, …) and the API client, the history user names the staff member.
"""

from django.db import models
from simple_history.models import HistoricalRecords

from ..audit import SOURCES, current_client_id, current_source


class AuditStamp(models.Model):
    """Added to every audit record: through what the change came, and which API client made it
    (`history_user` / `by` name the staff user)."""

    source = models.CharField(max_length=12, choices=SOURCES, default=current_source, editable=False)
    api_client_id_stamp = models.BigIntegerField(
        "API client", null=True, blank=True, default=current_client_id, editable=False
    )

    class Meta:
        abstract = True


def _history_user(instance=None, request=None, **kwargs):
    """The staff user behind a change; an API client is recorded in `api_client_id_stamp` instead."""
    from django.contrib.auth.models import AbstractBaseUser

    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def audit_trail(**options) -> HistoricalRecords:
    return HistoricalRecords(bases=[AuditStamp], get_user=_history_user, **options)
