"""Check-ins made the real way: the plan's CP-01 reminder becomes a check-in, the check-in sweep
invites, the outbox sends the e-mail, and the link is read from the e-mail the patient got."""

from datetime import date

import pytest
import time_machine

from alerts.models import CheckIn
from tests import builders
from tests.builders import CHECKIN_DUE, PERFORMED_ON, Invitation


@pytest.fixture
def clock():
    """Time stands at CHECKIN_DUE until a test moves it."""
    with time_machine.travel(CHECKIN_DUE, tick=False) as traveller:
        yield traveller


@pytest.fixture
def plan_checkin(clock, make_procedure):
    """plan_checkin(patient=None): a procedure done yesterday whose CP-01 reminder has been swept into a
    check-in."""

    def plan(patient=None) -> CheckIn:
        procedure = make_procedure(patient=patient, performed_on=PERFORMED_ON, fracture_diagnosed_on=date(2026, 3, 1))
        return builders.plan_checkin(procedure=procedure)

    return plan


@pytest.fixture
def invite(plan_checkin):
    """invite(patient=None): a check-in whose invitation e-mail has been sent, with the link path read from
    the e-mail."""

    def invite(patient=None) -> Invitation:
        return builders.send_invitation(checkin=plan_checkin(patient))

    return invite
