"""A patient's phone number from the admin and the CSV import: E.164, validated, and shown to staff
next to the patient's name, MRN and birth date on every admin list of their rows."""

import pytest
from django.urls import reverse

from alerts.reports import submit_report
from patients.importing import import_rows
from patients.models import Patient, StaffRole
from tests import builders
from tests.patients.test_import import sample_rows

pytestmark = pytest.mark.django_db


def test_the_import_keeps_phone_numbers_in_e164_and_refuses_a_bad_one_naming_the_row(clinic):
    rows = sample_rows()
    imported = import_rows(clinic=clinic, rows=rows, dry_run=True)
    assert imported.errors == []

    bad = [dict(row) for row in rows]
    for row in bad:
        if row["mrn"] == "A100":
            row["phone"] = "not a number"
    refused = import_rows(clinic=clinic, rows=bad, dry_run=False)

    assert {(error.row, error.field) for error in refused.errors} >= {(2, "phone")}
    assert not Patient.objects.exists()
    import_rows(clinic=clinic, rows=rows, dry_run=False)
    assert str(Patient.objects.get(mrn="A100").phone) == "+442079460001"


@pytest.mark.parametrize(
    "changelist",
    [
        "admin:alerts_alert_changelist",
        "admin:alerts_symptomreport_changelist",
        "admin:patients_checkpoint_changelist",
        "admin:patients_procedure_changelist",
    ],
)
def test_admin_lists_of_a_patients_rows_show_name_mrn_and_birth_date(client, coordinator, make_procedure, changelist):
    procedure = make_procedure(
        patient=builders.make_patient(
            clinic=coordinator.clinic_memberships.get().clinic,
            number=9,
            given_name="Ida",
            family_name="Identity",
            mrn="ID-9",
        )
    )
    submit_report(procedure=procedure, source="api", red_flags=["RF-06"])
    client.force_login(coordinator)

    page = client.get(reverse(changelist)).content.decode()

    assert "Identity, Ida" in page and "ID-9" in page
    assert procedure.patient.birth_date.strftime("%Y") in page
    assert "Patient #" not in page
    assert "Clinic</a>" not in page  # one clinic: no clinic column


def test_staff_of_two_clinics_also_see_the_clinic(client, coordinator, other_clinic, make_procedure):
    from patients.models import ClinicMembership

    ClinicMembership.objects.create(user=coordinator, clinic=other_clinic, role=StaffRole.AUDITOR)
    make_procedure()
    client.force_login(coordinator)

    page = client.get(reverse("admin:patients_procedure_changelist")).content.decode()

    assert "Northside Spine" in page
