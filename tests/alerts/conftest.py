"""Check-ins made the real way: the plan's CP-01 reminder becomes a check-in, the check-in sweep
invites, the outbox sends the e-mail, and the link is read from the e-mail the patient got."""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlparse

import pytest
import time_machine
from django.core import mail

from alerts.checkins import sweep_checkins
from alerts.models import CheckIn, Delivery, DeliveryKind
from alerts.outbox import deliver
from alerts.reminders import sweep_reminders
from patients.models import Checkpoint

# 09:00 in London (GMT, before the clocks go forward): CP-01 of a procedure done the day before is
# due now, and it is outside the clinic's quiet hours (20:00–08:00).
PERFORMED_ON = date(2026, 3, 9)
CHECKIN_DUE = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

LINK = re.compile(r"https?://\S+?/c/[A-Za-z0-9_-]+/")


def link_path(body: str, pattern: re.Pattern = LINK) -> str:
    """The path of the one link in an e-mail body that matches `pattern`."""
    [link] = pattern.findall(body)
    return urlparse(link).path


def form_answers(**overrides) -> dict[str, str]:
    """A complete check-in form: every red flag "no", concerns heard, no other procedure advised."""
    answers = {
        "pain_now": "3",
        "pain_average_24h": "3",
        "painkillers": "non_opioid",
        "fell_since_last": "no",
        "missed_medication_doses": "na",
        "medication_side_effects": "na",
        "wearing_brace": "na",
        "doing_physio": "yes",
        "other_symptoms": "",
        **{f"RF-{n:02d}": "no" for n in range(1, 11)},
        "SO-2": "yes",
        "SO-4": "no",
    }
    answers.update(overrides)
    return {key: value for key, value in answers.items() if value is not None}


@dataclass
class Invitation:
    checkin: CheckIn
    path: str  # /c/<token>/
    message: mail.EmailMessage


@pytest.fixture
def clock():
    """Time stands at CHECKIN_DUE until a test moves it."""
    with time_machine.travel(CHECKIN_DUE, tick=False) as traveller:
        yield traveller


@pytest.fixture
def plan_checkin(clock, make_procedure):
    """A procedure done yesterday whose CP-01 reminder has been swept into a check-in."""

    def plan(patient=None) -> CheckIn:
        procedure = make_procedure(patient=patient, performed_on=PERFORMED_ON, fracture_diagnosed_on=date(2026, 3, 1))
        checkpoint = Checkpoint.objects.get(procedure=procedure, code="CP-01")
        assert checkpoint.next_reminder_at == CHECKIN_DUE
        sweep_reminders(now=checkpoint.next_reminder_at)
        return CheckIn.objects.get(checkpoint=checkpoint)

    return plan


@pytest.fixture
def invite(plan_checkin):
    """A check-in whose invitation e-mail has been sent; returns the link path read from the e-mail."""

    def invite(patient=None) -> Invitation:
        checkin = plan_checkin(patient)
        sweep_checkins(now=CHECKIN_DUE)
        delivery = Delivery.objects.get(checkin=checkin, kind=DeliveryKind.CHECKIN)
        deliver(delivery_id=delivery.pk)
        message = mail.outbox[-1]
        assert message.to == [checkin.patient.email]
        checkin.refresh_from_db()
        return Invitation(checkin=checkin, path=link_path(message.body), message=message)

    return invite
