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


def _busy(make_patient, make_procedure, clinic, family_name: str):
    """A patient of `clinic` with an open alert, a review task, due checkpoints and a missing risk fact."""
    procedure = make_procedure(
        patient=make_patient(clinic=clinic, family_name=family_name),
        performed_on=timezone.localdate() - timedelta(days=30),
        fracture_diagnosed_on=timezone.localdate() - timedelta(days=40),
    )
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-01"])
    return procedure


def test_rows_of_a_clinic_where_the_user_only_audits_show_no_action_buttons(
    client, clinic, other_clinic, make_patient, make_procedure
):
    """Coordinator at A, auditor at B: B's rows are listed (an auditor reads them) without the buttons
    that would only answer 403; A's rows keep theirs. The page costs the same queries however many rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from patients.models import ClinicMembership, StaffRole
    from patients.services import sweep_checkpoint_states
    from tests.builders import make_staff, sync_staff_groups

    user = make_staff(username="mixed", clinic=clinic, role=StaffRole.COORDINATOR)
    ClinicMembership.objects.create(user=user, clinic=other_clinic, role=StaffRole.AUDITOR)
    sync_staff_groups(user)
    mine = _busy(make_patient, make_procedure, clinic, "Ours")
    theirs = _busy(make_patient, make_procedure, other_clinic, "Theirs")
    sweep_checkpoint_states(now=timezone.now())
    client.force_login(user)
    with CaptureQueriesContext(connection) as first:
        page = client.get(reverse("admin:index")).content.decode()

    a_alert, b_alert = Alert.objects.get(patient=mine.patient), Alert.objects.get(patient=theirs.patient)
    assert "Theirs" in page and f'id="alert-{b_alert.pk}"' in page, "the auditor of B sees B's rows"
    assert reverse("admin:worklist-act", args=["alert", a_alert.pk, "acknowledge"]) in page
    assert reverse("admin:worklist-act", args=["alert", b_alert.pk, "acknowledge"]) not in page
    b_checkpoints = Checkpoint.objects.filter(procedure=theirs, state__in=[CheckpointState.DUE, CheckpointState.MISSED])
    a_checkpoint = Checkpoint.objects.filter(procedure=mine, state=CheckpointState.MISSED).first()
    assert b_checkpoints.exists() and a_checkpoint is not None
    assert reverse("admin:worklist-act", args=["checkpoint", a_checkpoint.pk, "complete"]) in page
    for checkpoint in b_checkpoints:
        for action in ("complete", "reschedule"):
            assert reverse("admin:worklist-act", args=["checkpoint", checkpoint.pk, action]) not in page
    assert reverse("admin:patients_procedure_change", args=[theirs.pk]) not in page
    assert page.count("View only") >= 2

    _busy(make_patient, make_procedure, other_clinic, "More")
    _busy(make_patient, make_procedure, clinic, "Ourmore")
    sweep_checkpoint_states(now=timezone.now())
    with CaptureQueriesContext(connection) as second:
        client.get(reverse("admin:index"))
    assert len(second) == len(first), "no query per row"
