"""The weekly cap on a patient's non-safety e-mails (protocol [patient_messages], [DESIGN]): at most
`weekly_cap` reminders and check-in invitations in any 7 days; one due while the cap is reached waits
a day. Messages of the `uncapped` checkpoints or reasons (the safety screen, a check-in a finding
added) always go and do not count. Alert pages go to staff and are never capped."""

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count

from patients.protocol import get_protocol

from .models import Delivery, DeliveryKind, DeliveryState

WEEK = timedelta(days=7)
UNCAPPED = "uncapped"  # the Delivery.context key marking a message that does not count


def is_uncapped(protocol_version: str, code: str) -> bool:
    return code in get_protocol(protocol_version).patient_messages.uncapped


def weekly_cap(protocol_version: str) -> int:
    return get_protocol(protocol_version).patient_messages.weekly_cap


def sent_this_week(patient_ids: Iterable[int], *, now: datetime) -> Counter:
    """Per patient, the counted reminders and check-in invitations written in the 7 days up to `now`."""
    ids = list(set(patient_ids))
    if not ids:
        return Counter()
    rows = (
        Delivery.objects.filter(
            patient_id__in=ids,
            kind__in=[DeliveryKind.REMINDER, DeliveryKind.CHECKIN],
            created_at__gt=now - WEEK,
            created_at__lte=now,
        )
        .exclude(state=DeliveryState.CANCELLED)
        .exclude(context__has_key=UNCAPPED)
        .values("patient")
        .annotate(n=Count("id"))
    )
    return Counter({row["patient"]: row["n"] for row in rows})
