"""What sending a symptom report costs, and the patient and procedure checks the one query that reads
them keeps: a report names a patient of the caller's clinics and one of that patient's procedures, or
gets the patient's latest; anything else is refused on the field, as before.

Northside's EHR (`ehr`) is the caller unless a test says otherwise."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import SymptomReport
from tests.builders import API_BASE as BASE

pytestmark = pytest.mark.usefixtures("fresh_throttle")

# The token, its clinics, the procedure with its patient checked in one query, then in the service's
# transaction (savepoint and release here, as a test runs inside a transaction): the patient locked,
# the earlier pain scores, the report and the pain reading. A change here is a change in what every
# report sent by an EHR costs.
REPORT_QUERIES = 9


@pytest.fixture
def ana(make_procedure, make_patient):
    """Northside's patient Ana with a kyphoplasty five days ago."""
    return make_procedure(
        patient=make_patient(mrn="NS-0001", given_name="Ana"),
        performed_on=timezone.localdate() - timedelta(days=5),
    ).patient


def send(ehr, body):
    return ehr.post(f"{BASE}/symptom-reports/", body, format="json")


def test_a_report_without_red_flags_costs_a_fixed_number_of_queries(ehr, ana, django_assert_max_num_queries):
    procedure = ana.procedures.get()
    send(ehr, {"patient": ana.pk, "procedure": procedure.pk, "pain_now": 3})  # the token's last use is noted once
    for pain in (3, 2):
        with django_assert_max_num_queries(REPORT_QUERIES):
            response = send(ehr, {"patient": ana.pk, "procedure": procedure.pk, "pain_now": pain, "red_flags": []})
        assert response.status_code == 201, response.content


def test_a_report_naming_no_procedure_costs_the_same(ehr, ana, django_assert_max_num_queries):
    send(ehr, {"patient": ana.pk, "pain_now": 3})
    with django_assert_max_num_queries(REPORT_QUERIES):
        response = send(ehr, {"patient": ana.pk, "pain_now": 3})
    assert response.status_code == 201, response.content
    assert response.json()["procedure"] == ana.procedures.get().pk


def test_a_report_naming_no_procedure_goes_to_the_patients_latest(ehr, ana, make_procedure):
    later = make_procedure(patient=ana, performed_on=timezone.localdate() - timedelta(days=2))
    response = send(ehr, {"patient": ana.pk, "pain_now": 3})
    assert response.status_code == 201, response.content
    assert SymptomReport.objects.get(pk=response.json()["id"]).procedure == later


def test_a_procedure_of_another_patient_is_refused_on_the_procedure(ehr, ana, make_procedure):
    other = make_procedure()
    response = send(ehr, {"patient": ana.pk, "procedure": other.pk, "pain_now": 3})
    assert response.status_code == 400
    assert response.json() == {"procedure": ["This procedure belongs to another patient."]}
    assert not SymptomReport.objects.exists()


def test_another_clinics_patient_and_procedure_are_refused_as_if_they_did_not_exist(
    ehr, ana, make_procedure, make_patient, other_clinic
):
    theirs = make_procedure(patient=make_patient(clinic=other_clinic))
    for body, field, pk in [
        ({"patient": theirs.patient_id, "procedure": theirs.pk}, "patient", theirs.patient_id),
        ({"patient": theirs.patient_id}, "patient", theirs.patient_id),
        ({"patient": ana.pk, "procedure": theirs.pk}, "procedure", theirs.pk),
    ]:
        response = send(ehr, body | {"pain_now": 3})
        assert response.status_code == 400
        assert response.json()[field] == [f'Invalid pk "{pk}" - object does not exist.']
    assert not SymptomReport.objects.exists()


def test_ids_sent_as_strings_are_read_as_before(ehr, ana):
    procedure = ana.procedures.get()
    response = send(ehr, {"patient": str(ana.pk), "procedure": str(procedure.pk), "pain_now": 3})
    assert response.status_code == 201, response.content
    refused = send(ehr, {"patient": "ana", "pain_now": 3})
    assert refused.status_code == 400
    assert refused.json() == {"patient": ["Incorrect type. Expected pk value, received str."]}


def test_an_unknown_patient_is_named_with_the_other_bad_fields(ehr):
    response = send(ehr, {"patient": 10_000_000, "pain_now": 11})
    assert response.status_code == 400
    assert set(response.json()) == {"patient", "pain_now"}
