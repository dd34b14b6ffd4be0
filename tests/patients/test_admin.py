"""The admin shows and accepts registry data within the coordinator's own clinics."""

import pytest
from django.urls import reverse
from django.utils import timezone

from patients.models import Patient, Procedure

pytestmark = pytest.mark.django_db


def patient_form(clinic, **overrides):
    data = {
        "clinic": clinic.pk,
        "mrn": "ADM-1",
        "given_name": "Given",
        "family_name": "Family",
        "birth_date": "1950-03-04",
        "sex": "female",
        "status": "active",
        "language": "en",
        "time_zone": "Europe/London",
        "email": "",
        "phone": "",
        "procedures-TOTAL_FORMS": "0",
        "procedures-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_coordinator_adds_a_patient_in_the_admin(client, coordinator, clinic):
    client.force_login(coordinator)

    response = client.post(reverse("admin:patients_patient_add"), patient_form(clinic))

    assert response.status_code == 302, response.content
    assert Patient.objects.get().mrn == "ADM-1"


def test_admin_form_names_the_bad_field_and_saves_nothing(client, coordinator, clinic):
    client.force_login(coordinator)

    response = client.post(reverse("admin:patients_patient_add"), patient_form(clinic, bmd_lowest_t_score="-7"))

    assert response.status_code == 200
    assert "bmd_lowest_t_score" in response.context["adminform"].form.errors
    assert not Patient.objects.exists()


def test_admin_refuses_a_level_that_does_not_exist(client, coordinator, make_patient):
    patient = make_patient()
    client.force_login(coordinator)
    data = {
        "patient": patient.pk,
        "kind": "kyphoplasty",
        "performed_on": timezone.localdate().isoformat(),
        "levels-TOTAL_FORMS": "1",
        "levels-INITIAL_FORMS": "0",
        "levels-0-level": "T13",
    }

    response = client.post(reverse("admin:patients_procedure_add"), data)

    assert response.status_code == 200
    assert "level" in response.context["inline_admin_formsets"][0].formset.errors[0]
    assert not Procedure.objects.exists()


def test_coordinator_sees_only_own_clinic_patients(client, coordinator, other_clinic, make_patient):
    mine = make_patient(mrn="MINE-1")
    theirs = make_patient(mrn="THEIRS-1", clinic=other_clinic)
    client.force_login(coordinator)

    listing = client.get(reverse("admin:patients_patient_changelist"))
    assert "MINE-1" in listing.content.decode()
    assert "THEIRS-1" not in listing.content.decode()
    assert client.get(reverse("admin:patients_patient_change", args=[theirs.pk])).status_code == 302
    assert client.get(reverse("admin:patients_patient_change", args=[mine.pk])).status_code == 200


def test_recording_a_procedure_in_the_admin_plans_its_schedule(client, coordinator, make_patient):
    from patients.models import Checkpoint

    patient = make_patient()
    client.force_login(coordinator)
    today = timezone.localdate()
    data = {
        "patient": patient.pk,
        "kind": "kyphoplasty",
        "performed_on": today.isoformat(),
        "fracture_diagnosed_on": today.isoformat(),
        "brace_type": "",
        "notes": "",
        "levels-TOTAL_FORMS": "1",
        "levels-INITIAL_FORMS": "0",
        "levels-0-level": "L2",
        "levels-0-cement_distribution": "confluent",
        "levels-0-hounsfield_units": "150",
        "risk_assessments-TOTAL_FORMS": "0",
        "risk_assessments-INITIAL_FORMS": "0",
        "checkpoints-TOTAL_FORMS": "0",
        "checkpoints-INITIAL_FORMS": "0",
    }

    response = client.post(reverse("admin:patients_procedure_add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    procedure = Procedure.objects.get()
    codes = set(Checkpoint.objects.filter(procedure=procedure).values_list("code", flat=True))
    assert {f"CP-{n:02d}" for n in range(1, 13)} - {"CP-06"} <= codes
    assert procedure.protocol_version == "2026.1"
    assert procedure.risk_assessments.get(is_current=True).tier in {"standard", "elevated", "high"}


def test_coordinator_completes_a_checkpoint_with_its_outcome_in_the_admin(client, coordinator, make_procedure):
    from patients.models import Checkpoint

    procedure = make_procedure(
        performed_on=timezone.localdate() - timezone.timedelta(days=20),
        fracture_diagnosed_on=timezone.localdate() - timezone.timedelta(days=30),
    )
    checkpoint = Checkpoint.objects.get(procedure=procedure, code="CP-07")
    client.force_login(coordinator)
    url = reverse("admin:patients_checkpoint_complete", args=[checkpoint.pk])

    refused = client.post(url, {"notes": "called"})
    assert refused.status_code == 200
    assert "medication_started" in refused.context["form"].errors
    checkpoint.refresh_from_db()
    assert checkpoint.is_open

    done = client.post(
        url,
        {
            "medication_started": "true",
            "medication_drug": "alendronate",
            "medication_started_on": timezone.localdate().isoformat(),
        },
    )
    assert done.status_code == 302
    checkpoint.refresh_from_db()
    assert checkpoint.state == "completed" and checkpoint.completed_by == coordinator
    procedure.patient.refresh_from_db()
    assert procedure.patient.on_osteoporosis_med is True
    assert Checkpoint.objects.filter(procedure=procedure, code="CP-13").exists()


def test_patients_filter_by_their_current_risk_tier(client, coordinator, make_procedure, make_patient):
    high = make_procedure(patient=make_patient(mrn="HIGH-1"), facet_joint_violation=True)
    make_procedure(patient=make_patient(mrn="OTHER-1"))
    assert high.risk_assessments.get(is_current=True).tier == "high"
    client.force_login(coordinator)

    page = client.get(reverse("admin:patients_patient_changelist"), {"tier": "high"}).content.decode()

    assert "HIGH-1" in page and "OTHER-1" not in page


def procedure_form(patient, **overrides):
    today = timezone.localdate()
    data = {
        "patient": patient.pk,
        "kind": "kyphoplasty",
        "performed_on": (today - timezone.timedelta(days=3)).isoformat(),
        "fracture_diagnosed_on": (today - timezone.timedelta(days=12)).isoformat(),
        "facet_joint_violation": "true",
        "brace_type": "",
        "notes": "",
        "levels-TOTAL_FORMS": "1",
        "levels-INITIAL_FORMS": "0",
        "levels-0-level": "T12",
        "levels-0-cement_distribution": "separated",
        "levels-0-intravertebral_cleft": "true",
        "levels-0-hounsfield_units": "85",
        "risk_assessments-TOTAL_FORMS": "0",
        "risk_assessments-INITIAL_FORMS": "0",
        "checkpoints-TOTAL_FORMS": "0",
        "checkpoints-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def schedule_of(procedure):
    from patients.models import CheckpointEvent

    checkpoints = sorted(
        procedure.checkpoints.values_list("code", "sequence", "state", "target_date", "due_at", "priority")
    )
    events = sorted(
        CheckpointEvent.objects.filter(checkpoint__procedure=procedure).values_list(
            "checkpoint__code", "checkpoint__sequence", "kind", "reason"
        )
    )
    assessment = procedure.risk_assessments.get(is_current=True)
    risk = (assessment.tier, assessment.pain_points, assessment.fracture_points, assessment.factors, assessment.missing)
    return risk, checkpoints, events


def test_a_patient_and_procedure_added_in_the_admin_are_registered_through_the_services(client, coordinator, clinic):
    from patients.models import CheckpointEvent, TreatedLevel
    from patients.services import record_procedure, register_patient

    client.force_login(coordinator)
    added = client.post(reverse("admin:patients_patient_add"), patient_form(clinic, mrn="ADM-1"))
    assert added.status_code == 302, added.context and added.context["errors"]
    patient = Patient.objects.get(mrn="ADM-1")
    recorded = client.post(reverse("admin:patients_procedure_add"), procedure_form(patient))
    assert recorded.status_code == 302, recorded.context and recorded.context["errors"]
    procedure = Procedure.objects.get(patient=patient)

    twin_fields = {name: value for name, value in patient_form(clinic, mrn="SVC-1").items() if "-" not in name}
    twin = register_patient(**{**twin_fields, "clinic": clinic})
    level = {"level": "T12", "cement_distribution": "separated", "intravertebral_cleft": True, "hounsfield_units": 85}
    same = record_procedure(
        patient=twin,
        levels=[level],
        kind="kyphoplasty",
        performed_on=procedure.performed_on,
        fracture_diagnosed_on=procedure.fracture_diagnosed_on,
        facet_joint_violation=True,
    )

    assert schedule_of(procedure) == schedule_of(same)
    assert schedule_of(procedure)[0][0] == "high" and len(schedule_of(procedure)[2]) > 10
    created = [
        Patient.history.get(id=patient.pk, history_type="+"),
        Procedure.history.get(id=procedure.pk, history_type="+"),
        TreatedLevel.history.get(procedure_id=procedure.pk, history_type="+"),
    ]
    assert {(record.source, record.history_user) for record in created} == {("admin", coordinator)}
    assert set(Procedure.history.filter(id=procedure.pk).values_list("source", flat=True)) == {"admin"}
    assert set(CheckpointEvent.objects.filter(checkpoint__procedure=procedure).values_list("source", flat=True)) == {
        "admin"
    }


def test_a_duplicate_mrn_in_the_admin_add_form_is_shown_on_the_form_and_nothing_is_written(
    client, coordinator, clinic, make_patient
):
    from django.contrib.admin.models import LogEntry

    make_patient(mrn="DUP-1")
    client.force_login(coordinator)

    response = client.post(reverse("admin:patients_patient_add"), patient_form(clinic, mrn="DUP-1"))

    assert response.status_code == 200
    assert "MRN already exists" in str(response.context["adminform"].form.errors)
    assert Patient.objects.count() == 1
    assert Patient.history.count() == 1
    assert not LogEntry.objects.exists()


def change_form(patient, **overrides):
    """The patient's change form as posted unchanged, but for `overrides`."""
    stored = {"mrn": patient.mrn, "birth_date": patient.birth_date.isoformat(), "email": patient.email}
    return patient_form(patient.clinic, **stored, email_consent="on", **overrides)


def test_withdrawing_a_patient_in_the_admin_stops_the_follow_up(client, coordinator, make_procedure):
    from patients.models import Checkpoint, CheckpointEvent

    procedure = make_procedure()
    patient = procedure.patient
    open_before = Checkpoint.objects.open().filter(procedure=procedure).count()
    client.force_login(coordinator)
    data = change_form(
        patient,
        status="withdrawn",
        **{"procedures-TOTAL_FORMS": "1", "procedures-INITIAL_FORMS": "1", "procedures-0-id": procedure.pk},
    )

    response = client.post(reverse("admin:patients_patient_change", args=[patient.pk]), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert open_before > 0
    assert not Checkpoint.objects.open().filter(procedure=procedure).exists()
    cancelled = CheckpointEvent.objects.filter(checkpoint__procedure=procedure, kind="cancelled")
    assert cancelled.count() == open_before
    assert set(cancelled.values_list("reason", "source")) == {("patient withdrawn", "admin")}


def test_a_procedure_cannot_be_added_from_the_patient_page_without_its_levels(client, coordinator, make_patient):
    patient = make_patient()
    client.force_login(coordinator)
    data = change_form(
        patient,
        **{
            "procedures-TOTAL_FORMS": "1",
            "procedures-0-kind": "kyphoplasty",
            "procedures-0-performed_on": timezone.localdate().isoformat(),
        },
    )

    client.post(reverse("admin:patients_patient_change", args=[patient.pk]), data)

    assert not Procedure.objects.exists()


def test_revoking_an_api_client_in_the_admin_is_recorded_in_its_history(admin_client, admin_user, clinic):
    from patients.models import ApiClient

    ehr = ApiClient.objects.create(name="EHR", scopes=["read"], token_hash="a" * 64, token_prefix="kf_aaaa")
    changelist = reverse("admin:patients_apiclient_changelist")

    first = admin_client.post(changelist, {"action": "revoke", "_selected_action": [ehr.pk]}, follow=True)
    again = admin_client.post(changelist, {"action": "revoke", "_selected_action": [ehr.pk]}, follow=True)

    ehr.refresh_from_db()
    assert ehr.revoked_at is not None
    assert "The token of one API client was revoked" in first.content.decode()
    assert "No token was revoked" in again.content.decode()
    created, revoked = ehr.history.order_by("history_date")
    assert created.revoked_at is None
    assert (revoked.history_type, revoked.revoked_at, revoked.source, revoked.history_user) == (
        "~",
        ehr.revoked_at,
        "admin",
        admin_user,
    )
    assert revoked.history_change_reason == "revoked"
