"""The demo clock advances the demo clinic through a month, running the beat schedule hour by hour,
and each reminder goes out once."""

from collections import Counter
from datetime import timedelta

import pytest
from celery import shared_task
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts.models import CheckIn, Delivery, DeliveryKind, DeliveryState, DigestRun
from patients.demo import seed_demo


@shared_task(name="tests.alerts.failing_sweep_task")
def failing_sweep_task(now=None):
    raise RuntimeError("the sweep's database went away")


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
    for name in settings.CELERY_BEAT_SCHEDULE:
        assert f"{name} ran {30 * 24 + 1} times" in output


@pytest.mark.django_db
def test_a_failing_sweep_is_reported_and_every_other_entry_still_runs(make_procedure, settings, capsys):
    procedure = make_procedure(performed_on=timezone.localdate() - timedelta(days=1))
    others = list(settings.CELERY_BEAT_SCHEDULE)
    failing = {"failing-sweep": {"task": "tests.alerts.failing_sweep_task", "schedule": 60.0}}
    settings.CELERY_BEAT_SCHEDULE = {**failing, **settings.CELERY_BEAT_SCHEDULE}

    call_command("demo_clock", days=2)
    output, errors = capsys.readouterr()

    assert "failing-sweep failed: RuntimeError: the sweep's database went away" in errors
    assert "failing-sweep ran 0 times, failed 49 times" in output
    for name in others:
        assert f"{name} ran 49 times" in output
    # The reminder, check-in and outbox sweeps that come after the failing one did their work.
    checkin = CheckIn.objects.get(procedure=procedure, reason="CP-01")
    assert Delivery.objects.filter(checkin=checkin, state=DeliveryState.SENT).exists()


@pytest.mark.django_db
def test_demo_clock_refuses_a_silly_number_of_days():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--days must be between 1 and 366"):
        call_command("demo_clock", days=0)
