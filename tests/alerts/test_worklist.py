"""The worklist: today's work for the coordinator's clinics only, each row with the action that clears it."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertState
from alerts.reports import submit_report
from patients.models import Checkpoint, CheckpointState

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_procedure(make_patient, make_procedure, clinician):
    procedure = make_procedure(
        patient=make_patient(given_name="Wilma", family_name="Worklist", responsible_clinician=clinician),
        performed_on=timezone.localdate() - timedelta(days=30),
        fracture_diagnosed_on=timezone.localdate() - timedelta(days=40),
    )
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-01"])
    submit_report(procedure=procedure, source="api", pain_now=5, red_flags=["RF-06"])
    from patients.services import sweep_checkpoint_states

    sweep_checkpoint_states(now=timezone.now())
    return procedure


def test_worklist_lists_open_alerts_emergency_first_and_due_and_missed_checkpoints(client, coordinator, busy_procedure):
    client.force_login(coordinator)

    page = client.get(reverse("admin:index")).content.decode()

    assert page.index("RF-01") < page.index("RF-06")
    assert "Worklist" in page and "Due and missed checkpoints" in page
    assert "CP-01" in page  # missed: its window (days 1–3) closed long ago


def test_coordinator_acknowledges_an_alert_without_leaving_the_worklist(client, coordinator, busy_procedure):
    alert = Alert.objects.get(code="RF-01")
    client.force_login(coordinator)

    response = client.post(reverse("admin:worklist-act", args=["alert", alert.pk, "acknowledge"]), {"note": "called"})

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:index"))
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED and alert.acknowledged_by == coordinator


def test_coordinator_completes_a_missed_checkpoint_with_its_outcome_from_the_worklist(
    client, coordinator, busy_procedure
):
    checkpoint = Checkpoint.objects.get(procedure=busy_procedure, code="CP-02")
    assert checkpoint.state == CheckpointState.MISSED
    client.force_login(coordinator)

    client.post(
        reverse("admin:worklist-act", args=["checkpoint", checkpoint.pk, "complete"]),
        {"notes": "seen in clinic late", "pain_score": "3"},
    )

    checkpoint.refresh_from_db()
    assert checkpoint.state == CheckpointState.COMPLETED and checkpoint.pain_score == 3


def test_a_refused_action_says_why_and_changes_nothing(client, coordinator, busy_procedure):
    checkpoint = Checkpoint.objects.get(procedure=busy_procedure, code="CP-07")
    client.force_login(coordinator)

    response = client.post(
        reverse("admin:worklist-act", args=["checkpoint", checkpoint.pk, "complete"]), {}, follow=True
    )

    assert "CP-07 needs the medication started" in response.content.decode()
    checkpoint.refresh_from_db()
    assert checkpoint.state != CheckpointState.COMPLETED


def test_another_clinics_coordinator_sees_and_clears_nothing(client, other_clinic_coordinator, busy_procedure):
    alert = Alert.objects.get(code="RF-01")
    client.force_login(other_clinic_coordinator)

    page = client.get(reverse("admin:index")).content.decode()
    response = client.post(reverse("admin:worklist-act", args=["alert", alert.pk, "acknowledge"]))

    assert "No open alerts." in page
    assert "RF-01" not in page and "Wilma" not in page
    assert response.status_code == 404
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN


def test_patient_overview_shows_timeline_pain_chart_and_risk_sources(client, coordinator, busy_procedure):
    client.force_login(coordinator)

    page = client.get(reverse("admin:patient-overview", args=[busy_procedure.patient_id])).content.decode()

    assert "<svg" in page and "Pain score over time" in page
    assert "Timeline" in page and "Alert RF-01" in page
    assert "S0; E2" in page  # the TL-junction factor's source (L1 is at the junction)
