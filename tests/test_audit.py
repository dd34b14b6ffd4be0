"""The audit trail: every change of patient data and every checkpoint and alert transition, with the
actor (staff user or API client), time, source and what changed; readable by auditors, changeable by
no one through the app."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertEvent
from alerts.reports import submit_report
from patients.models import Checkpoint, CheckpointEvent, Patient, StaffRole
from tests.builders import make_api_token, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor(clinic):
    return make_staff(username="audrey", clinic=clinic, role=StaffRole.AUDITOR)


@pytest.fixture
def api(client, clinic):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_api_token(clinics=[clinic])}"
    return client


def test_a_patient_created_over_the_api_is_audited_with_the_client_and_source(api, clinic):
    response = api.post(
        "/api/v1/patients/",
        {
            "mrn": "AUD-1",
            "given_name": "Ada",
            "family_name": "Audit",
            "birth_date": "1950-01-01",
            "timezone": "Europe/London",
        },
        content_type="application/json",
    )

    assert response.status_code == 201
    [record] = Patient.history.filter(id=response.json()["id"])
    assert (record.history_type, record.source, record.history_user) == ("+", "api", None)
    assert record.api_client_id_stamp is not None


def test_a_change_in_the_admin_is_audited_with_the_user_and_what_changed(client, coordinator, make_patient):
    patient = make_patient(phone="")
    client.force_login(coordinator)
    data = {
        "clinic": patient.clinic_id,
        "mrn": patient.mrn,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "birth_date": patient.birth_date.isoformat(),
        "sex": "unknown",
        "status": "active",
        "language": "en",
        "time_zone": "Europe/London",
        "email": patient.email,
        "email_consent": "on",
        "phone": "+44 20 1234 5678",
        "procedures-TOTAL_FORMS": "0",
        "procedures-INITIAL_FORMS": "0",
    }

    assert client.post(reverse("admin:patients_patient_change", args=[patient.pk]), data).status_code == 302

    latest = Patient.history.filter(id=patient.pk).latest("history_date")
    assert (latest.history_type, latest.source, latest.history_user) == ("~", "admin", coordinator)
    changes = latest.diff_against(latest.prev_record).changed_fields
    assert "phone" in changes


def test_checkpoint_and_alert_transitions_record_actor_and_source(api, make_procedure, clinician):
    procedure = make_procedure(
        performed_on=timezone.localdate() - timedelta(days=20),
        fracture_diagnosed_on=timezone.localdate() - timedelta(days=30),
    )
    checkpoint = Checkpoint.objects.get(procedure=procedure, code="CP-10")

    api.post(
        f"/api/v1/checkpoints/{checkpoint.pk}/cancel/", {"reason": "moved abroad"}, content_type="application/json"
    )
    submit_report(procedure=procedure, source="api", pain_now=5, red_flags=["RF-05"])
    alert = Alert.objects.get()
    api.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, content_type="application/json")

    cancelled = CheckpointEvent.objects.get(checkpoint=checkpoint, kind="cancelled")
    assert (cancelled.source, cancelled.reason) == ("api", "moved abroad") and cancelled.api_client_id
    acknowledged = AlertEvent.objects.get(alert=alert, kind="acknowledged")
    assert acknowledged.source == "api" and acknowledged.api_client_id == cancelled.api_client_id


def test_work_done_by_a_background_task_is_audited_as_such(make_procedure):
    from patients.tasks import sweep_checkpoints_task

    make_procedure(
        performed_on=timezone.localdate() - timedelta(days=20),
        fracture_diagnosed_on=timezone.localdate() - timedelta(days=30),
    )
    sweep_checkpoints_task.apply()

    assert set(CheckpointEvent.objects.filter(kind="missed").values_list("source", flat=True)) == {"task"}


def test_auditors_read_the_trail_and_no_one_can_change_or_delete_it(client, auditor, coordinator, make_patient):
    patient = make_patient()
    record = Patient.history.get(id=patient.pk)
    changelist = reverse("admin:patients_historicalpatient_changelist")
    change = reverse("admin:patients_historicalpatient_change", args=[record.pk])
    delete = reverse("admin:patients_historicalpatient_delete", args=[record.pk])

    client.force_login(auditor)
    assert client.get(changelist).status_code == 200
    assert client.get(change).status_code == 200
    assert client.post(change, {"mrn": "CHANGED"}).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403

    client.force_login(coordinator)
    assert client.get(changelist).status_code == 403
    record.refresh_from_db()
    assert record.mrn == patient.mrn
