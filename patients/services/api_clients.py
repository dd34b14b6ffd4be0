"""EHR integrations' API clients: revoking one, with an audit record of who did it and when."""

from django.db import models, transaction
from django.utils import timezone

from ..models import ApiClient


@transaction.atomic
def revoke_api_clients(*, clients: models.QuerySet[ApiClient], by=None) -> int:
    """Revoke each of `clients` not yet revoked: its token is refused from now on (`revoked_at`),
    and its audit trail gains a record naming `by` (else the request's staff user). Returns how
    many were revoked; a client revoked already, or by a racing request, is left as it is."""
    now = timezone.now()
    revoked = 0
    # By primary key: the admin's action queryset may be DISTINCT, which cannot be locked.
    for client in ApiClient.objects.select_for_update().filter(pk__in=clients.values("pk"), revoked_at__isnull=True):
        client.revoked_at = now
        if by is not None:
            client._history_user = by
        client._change_reason = "revoked"
        client.save(update_fields=["revoked_at"])
        revoked += 1
    return revoked
