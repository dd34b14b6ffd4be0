"""Resolving an alert takes a reason and a second look; a resolution made by mistake is undone by
reopening the alert with a reason, which pages again from the first step."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from alerts.escalation import reopen_alert, resolve_alert, sweep_escalations
from alerts.models import Alert, AlertEvent, AlertState, Delivery, DeliveryKind
from alerts.reports import submit_report
from alerts.templatetags.staff_words import clinic_date
from patients.models import StaffRole
from tests.builders import bearer_client, make_api_token, make_staff


@pytest.fixture
def alert(make_patient, make_procedure, clinician) -> Alert:
    patient = make_patient(responsible_clinician=clinician, given_name="Rosa", family_name="Resolvewell")
    procedure = make_procedure(patient=patient, performed_on=timezone.localdate() - timedelta(days=5))
    submit_report(procedure=procedure, source="api", pain_now=3, red_flags=["RF-01", "RF-05"])
    return Alert.objects.get(patient=patient, code="RF-01")


def page_count(alert) -> int:
    return Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).count()


@pytest.mark.hazard("HAZ-47")
@pytest.mark.django_db
def test_resolving_in_the_admin_first_shows_the_alert_its_red_flags_and_the_patient_and_changes_nothing(
    client, alert, clinician
):
    client.force_login(clinician)
    url = reverse("admin:alerts_alert_resolve", args=[alert.pk])
    choice = {"reason": "referred", "note": "Sent to the emergency department"}

    first = client.post(url, choice)

    alert.refresh_from_db()
    assert first.status_code == 200 and alert.state == AlertState.OPEN
    page = first.content.decode()
    patient = alert.patient
    born = clinic_date(patient.birth_date, patient.clinic)
    for shown in (patient.family_name, patient.given_name, patient.mrn, f"born {born}", "RF-01", "RF-05", alert.action):
        assert shown in page
    assert "Sent to emergency or other care" in page and 'name="confirmed" value="1"' in page

    confirmed = client.post(url, {**choice, "confirmed": "1"})

    alert.refresh_from_db()
    assert confirmed.status_code == 302
    assert (alert.state, alert.resolve_reason, alert.resolve_note) == ("resolved", "referred", choice["note"])
    assert alert.events.get(kind=AlertEvent.Kind.RESOLVED).data == {"reason": "referred"}


@pytest.mark.hazard("HAZ-47")
@pytest.mark.django_db
def test_resolving_without_a_reason_is_refused_in_the_service_the_admin_and_the_api(client, alert, clinic, clinician):
    with pytest.raises(ValidationError) as refused:
        resolve_alert(alert=alert, by=clinician, reason="", note="seen")
    assert list(refused.value.message_dict) == ["reason"]
    client.force_login(clinician)
    form = client.post(reverse("admin:alerts_alert_resolve", args=[alert.pk]), {"note": "seen", "confirmed": "1"})
    assert form.status_code == 200 and "reason" in form.context["form"].errors

    api = bearer_client(token=make_api_token(clinics=[clinic]))
    answer = api.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"note": "seen in clinic"}, format="json")

    assert answer.status_code == 400 and list(answer.json()) == ["reason"]
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN and not alert.events.filter(kind=AlertEvent.Kind.RESOLVED).exists()
    resolved = api.post(
        f"/api/v1/alerts/{alert.pk}/resolve/", {"reason": "managed", "note": "seen in clinic"}, format="json"
    )
    assert resolved.status_code == 200 and resolved.json()["resolve_reason"] == "managed"


@pytest.mark.hazard("HAZ-47")
@pytest.mark.django_db
def test_a_resolved_alert_reopened_with_a_reason_pages_again_from_the_first_step(client, alert, clinic, clinician):
    coordinator = make_staff(username="charlie", clinic=clinic, role=StaffRole.COORDINATOR)
    resolve_alert(alert=alert, by=clinician, reason="no_action", note="looked fine")
    pages_before = page_count(alert)
    client.force_login(clinician)
    url = reverse("admin:alerts_alert_reopen", args=[alert.pk])

    assert client.post(url, {"reason": " "}).status_code == 200  # a reason is required
    assert Alert.objects.get(pk=alert.pk).state == AlertState.RESOLVED
    reopened = client.post(url, {"reason": "Resolved the wrong patient's alert"})

    alert.refresh_from_db()
    assert reopened.status_code == 302
    assert (alert.state, alert.level, alert.resolved_at, alert.resolve_reason) == ("open", 0, None, "")
    event = alert.events.get(kind=AlertEvent.Kind.UNRESOLVED)
    assert (event.by, event.note) == (clinician, "Resolved the wrong patient's alert")
    assert event.data["resolved"]["reason"] == "no_action"
    assert page_count(alert) == pages_before + 1
    assert sweep_escalations(now=alert.policy_started_at + timedelta(minutes=10)) == 1  # escalation restarted
    assert Delivery.objects.filter(alert=alert).latest("id").recipient == coordinator.email


@pytest.mark.hazard("HAZ-47")
@pytest.mark.django_db
def test_only_staff_who_may_act_on_the_clinics_alerts_can_reopen_and_never_over_a_newer_live_alert(
    alert, clinic, clinician, other_clinic_coordinator
):
    auditor = make_staff(username="audrey_auditor", clinic=clinic, role=StaffRole.AUDITOR)
    with pytest.raises(ValidationError, match="already open"):
        reopen_alert(alert=alert, by=clinician, reason="not resolved yet")
    resolve_alert(alert=alert, by=clinician, reason="managed", note="seen")
    for outsider in (auditor, other_clinic_coordinator):
        with pytest.raises(PermissionDenied):
            reopen_alert(alert=alert, by=outsider, reason="mistake")
    submit_report(procedure=alert.procedure, source="api", pain_now=3, red_flags=["RF-01"])  # a new live alert

    with pytest.raises(ValidationError, match="newer alert for the same rule is live"):
        reopen_alert(alert=alert, by=clinician, reason="mistake")
    assert Alert.objects.get(pk=alert.pk).state == AlertState.RESOLVED
