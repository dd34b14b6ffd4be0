"""The demo clock advances the demo clinic through a month and each reminder goes out once."""

from collections import Counter

import pytest
from django.core import mail
from django.core.management import call_command

from alerts.models import Delivery, DeliveryKind, DeliveryState, DigestRun
from patients.demo import seed_demo


@pytest.mark.django_db
def test_a_simulated_month_sends_each_due_reminder_and_digest_exactly_once(capsys):
    seed_demo()

    call_command("demo_clock", days=30)
    output = capsys.readouterr().out

    sent = Delivery.objects.filter(state=DeliveryState.SENT)
    assert sent.filter(kind=DeliveryKind.REMINDER).count() > 20
    # One coordinator, one digest per local day: 30 or 31 days, depending on the hour it starts.
    assert sent.filter(kind=DeliveryKind.DIGEST).count() == DigestRun.objects.count()
    assert 30 <= DigestRun.objects.count() <= 31
    assert len(mail.outbox) == sent.count()
    per_delivery = Counter(message.extra_headers["X-Kyphofollow-Delivery"] for message in mail.outbox)
    assert set(per_delivery.values()) == {1}
    assert not Delivery.objects.exclude(state__in=[DeliveryState.SENT, DeliveryState.CANCELLED]).exists()
    assert f"{len(mail.outbox)} e-mails sent" in output
    recipients = {message.to[0] for message in mail.outbox if message.subject != "kyphofollow: daily follow-up digest"}
    assert all(address.endswith("@demo-patient.invalid") for address in recipients)


@pytest.mark.django_db
def test_demo_clock_refuses_a_silly_number_of_days():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--days must be between 1 and 366"):
        call_command("demo_clock", days=0)
