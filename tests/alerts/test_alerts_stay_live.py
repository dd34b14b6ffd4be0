"""Alerts stay live until resolved (spec v0.2 §1 capture rules): a red flag reported again on an
acknowledged, unresolved alert pages again and restarts escalation; the worklist keeps
acknowledged-but-unresolved alerts in a section of their own, oldest acknowledgement first."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.escalation import acknowledge_alert, resolve_alert, sweep_escalations
from alerts.models import Alert, AlertEvent, AlertState, Delivery, DeliveryKind, DeliveryState
from alerts.reports import submit_report
from tests.processes import wait_until


@pytest.fixture
def procedure(make_patient, make_procedure, clinician):
    return make_procedure(
        patient=make_patient(given_name="Ruth", family_name="Repeat", responsible_clinician=clinician),
        performed_on=timezone.localdate() - timedelta(days=5),
    )


def pages(alert) -> int:
    return Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).count()


@pytest.mark.hazard("HAZ-02")
@pytest.mark.django_db
def test_a_repeat_after_acknowledgement_pages_again_restarts_escalation_and_records_why(
    procedure, clinician, coordinator
):
    submit_report(procedure=procedure, source="api", red_flags=["RF-02"])
    alert = Alert.objects.get()
    acknowledge_alert(alert=alert, by=clinician, via="admin")

    second = submit_report(procedure=procedure, source="api", red_flags=["RF-02"])

    alert.refresh_from_db()
    assert (alert.state, alert.count, alert.level) == (AlertState.OPEN, 2, 0)
    assert alert.acknowledged_at is None
    assert pages(alert) == 2
    reopened = alert.events.get(kind=AlertEvent.Kind.REOPENED)
    assert reopened.data["report"] == second.pk
    assert reopened.data["acknowledged"]["by"] == clinician.pk
    assert sweep_escalations(now=alert.policy_started_at + timedelta(minutes=10)) == 1  # escalation restarted
    assert Delivery.objects.filter(alert=alert, recipient_user=coordinator).exists()


@pytest.mark.hazard("HAZ-02")
@pytest.mark.django_db
def test_a_repeat_while_still_open_only_counts_and_a_resolved_alert_gives_a_new_one(procedure, clinician):
    submit_report(procedure=procedure, source="api", red_flags=["RF-05"])
    submit_report(procedure=procedure, source="api", red_flags=["RF-05"])
    alert = Alert.objects.get()
    assert (alert.count, pages(alert)) == (2, 1)
    resolve_alert(alert=alert, by=clinician, reason="managed", note="seen in clinic")

    submit_report(procedure=procedure, source="api", red_flags=["RF-05"])

    assert Alert.objects.count() == 2
    assert Alert.objects.filter(state=AlertState.OPEN).count() == 1


@pytest.mark.hazard("HAZ-02")
@pytest.mark.django_db
def test_the_worklist_shows_acknowledged_unresolved_alerts_in_their_own_section_oldest_first(
    client, coordinator, clinician, procedure, make_patient, make_procedure
):
    submit_report(procedure=procedure, source="api", red_flags=["RF-06"])
    other = make_procedure(patient=make_patient(given_name="Sam"), performed_on=procedure.performed_on)
    submit_report(procedure=other, source="api", red_flags=["RF-05"])
    first_raised, second_raised = Alert.objects.order_by("pk")
    acknowledge_alert(alert=second_raised, by=clinician, via="admin")  # acknowledged first: waiting longest
    acknowledge_alert(alert=first_raised, by=clinician, via="admin")
    client.force_login(coordinator)

    page = client.get(reverse("admin:index"))

    assert [alert.pk for alert in page.context["sections"]["acknowledged"]] == [second_raised.pk, first_raised.pk]
    assert list(page.context["sections"]["alerts"]) == []
    html = page.content.decode()
    assert "Acknowledged, not resolved" in html
    assert f'id="acknowledged-{first_raised.pk}"' in html and f'id="acknowledged-{second_raised.pk}"' in html
    resolve_alert(alert=second_raised, by=clinician, reason="no_action", note="MRI normal")
    remaining = client.get(reverse("admin:index")).context["sections"]["acknowledged"]
    assert [alert.pk for alert in remaining] == [first_raised.pk]


@pytest.mark.hazard("HAZ-02")
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_rf02_paged_acknowledged_then_reported_again_sends_a_second_page_through_a_real_worker(
    clinician, procedure, worker, smtp_server
):
    worker(env={"EMAIL_URL": smtp_server.url})

    def inboxes():
        return [message["To"] for message in smtp_server.messages]

    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    wait_until(lambda: inboxes() == [clinician.email], timeout=30, message="the first page")
    acknowledge_alert(alert=Alert.objects.get(), by=clinician, via="e-mail link")

    submit_report(procedure=procedure, source="form", red_flags=["RF-02"])

    wait_until(lambda: inboxes() == [clinician.email, clinician.email], timeout=30, message="the second page")
    assert {message["Subject"] for message in smtp_server.messages} == {"EMERGENCY: a patient needs review now"}
    alert = Alert.objects.get()
    assert alert.state == AlertState.OPEN and alert.next_escalation_at is not None
    assert not Delivery.objects.filter(state=DeliveryState.FAILED).exists()
