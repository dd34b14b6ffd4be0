"""The daily digest: one per clinic per local day, counts and a link, no PHI in the subject."""

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.core import mail

from alerts.digests import sweep_digests
from alerts.messages import DIGEST_SUBJECT
from alerts.models import Delivery, DeliveryKind
from alerts.outbox import deliver
from patients.services import sweep_checkpoint_states


@pytest.mark.django_db
def test_digest_lists_newly_overdue_items_once_a_day_after_its_local_time(coordinator, make_patient, make_procedure):
    patient = make_patient(given_name="Zebedee", mrn="SENTINEL-7")
    with time_machine.travel(datetime(2026, 3, 1, 12, tzinfo=UTC), tick=False):
        make_procedure(patient=patient, performed_on=date(2026, 3, 1))
    sweep_checkpoint_states(now=datetime(2026, 3, 5, 1, tzinfo=UTC))  # CP-01 (2–4 March) is missed

    assert sweep_digests(now=datetime(2026, 3, 5, 7, 0, tzinfo=UTC)) == 0  # 07:00 GMT, before 07:30
    assert sweep_digests(now=datetime(2026, 3, 5, 7, 30, tzinfo=UTC)) == 1
    assert sweep_digests(now=datetime(2026, 3, 5, 15, 0, tzinfo=UTC)) == 0  # same local day

    digest = Delivery.objects.get(kind=DeliveryKind.DIGEST)
    assert digest.recipient == coordinator.email
    assert digest.context["missed_count"] == 1
    deliver(delivery_id=digest.pk)
    [message] = mail.outbox
    assert message.subject == DIGEST_SUBJECT
    assert "Zebedee" not in message.body and "SENTINEL-7" not in message.body
    assert "newly overdue since the last digest: 1" in message.body
    assert "/admin/patients/checkpoint/?state__exact=missed" in message.body

    assert sweep_digests(now=datetime(2026, 3, 6, 7, 30, tzinfo=UTC)) == 1
    assert Delivery.objects.filter(kind=DeliveryKind.DIGEST).latest("id").context["missed_count"] == 0
