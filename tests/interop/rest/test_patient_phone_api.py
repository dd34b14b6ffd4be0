"""A patient's phone number over the REST API: stored and answered in E.164, a number that is not one
is a 400 naming the field, and nothing is saved."""

import pytest

from patients.models import Patient
from tests.builders import API_BASE as BASE
from tests.builders import changed_tables, snapshot

pytestmark = pytest.mark.usefixtures("fresh_throttle")

NEW = {
    "mrn": "PH-1",
    "given_name": "Pia",
    "family_name": "Phone",
    "birth_date": "1950-02-03",
    "timezone": "Europe/London",
}


def test_a_phone_number_given_with_spaces_is_stored_and_answered_in_e164(ehr):
    response = ehr.post(f"{BASE}/patients/", {**NEW, "phone": "+44 20 7946 0123"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["phone"] == "+442079460123"
    assert str(Patient.objects.get(mrn="PH-1").phone) == "+442079460123"


@pytest.mark.parametrize("phone", ["12345", "+44 1", "call me", "020 7946 0123"])
def test_a_phone_number_that_is_not_one_is_a_400_on_create_and_update_and_saves_nothing(ehr, phone, make_patient):
    patient = make_patient(mrn="PH-2", phone="+442079460124")
    before = snapshot()

    created = ehr.post(f"{BASE}/patients/", {**NEW, "phone": phone}, format="json")
    updated = ehr.patch(f"{BASE}/patients/{patient.pk}/", {"phone": phone}, format="json")

    assert (created.status_code, updated.status_code) == (400, 400)
    assert "phone" in created.json() and "phone" in updated.json()
    assert "valid phone number" in str(updated.json()["phone"])
    assert changed_tables(before, snapshot()) == []
