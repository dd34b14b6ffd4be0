"""Escalation through the chain with a real worker, Redis and SMTP server."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.escalation import acknowledge_alert, sweep_escalations
from alerts.models import Alert, Delivery, DeliveryState
from alerts.reports import submit_report
from patients.models import ClinicMembership, StaffRole
from tests.builders import make_staff
from tests.processes import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.mark.hazard("HAZ-07")
def test_red_flag_pages_clinician_then_coordinator_then_on_call_until_acknowledged(
    clinic, clinician, coordinator, make_patient, make_procedure, worker, smtp_server
):
    on_call = make_staff(username="dr_night", clinic=clinic, role=StaffRole.CLINICIAN)
    ClinicMembership.objects.filter(user=on_call).update(on_call=True)
    procedure = make_procedure(
        patient=make_patient(responsible_clinician=clinician), performed_on=timezone.localdate() - timedelta(days=2)
    )
    worker(env={"EMAIL_URL": smtp_server.url})

    def inboxes():
        return [message["To"] for message in smtp_server.messages]

    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])  # deduplicated
    wait_until(lambda: inboxes() == [clinician.email], timeout=30, message="the clinician's page")
    alert = Alert.objects.get()
    assert alert.count == 2

    # The worker sends at the real time, so the next step is made due now rather than swept in the future
    # (a page written for a future moment waits for that moment).
    Alert.objects.filter(pk=alert.pk).update(next_escalation_at=timezone.now() - timedelta(seconds=1))
    sweep_escalations(now=timezone.now())
    wait_until(lambda: len(inboxes()) == 2, timeout=30, message="the coordinator's page")
    assert inboxes()[1] == coordinator.email

    acknowledge_alert(alert=alert, by=coordinator, via="admin")
    sweep_escalations(now=alert.policy_started_at + timedelta(minutes=20))
    wait_until(
        lambda: not Delivery.objects.filter(state__in=[DeliveryState.PENDING, DeliveryState.SENDING]).exists(),
        timeout=30,
        message="the worker to go quiet",
    )
    assert inboxes() == [clinician.email, coordinator.email]
    assert {message["Subject"] for message in smtp_server.messages} == {"EMERGENCY: a patient needs review now"}
