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
