"""A page cursor is a URL that ends up in logs and browser histories: it never carries a patient's name,
MRN or birth date. Ordering a cursor-paged list by such a field is refused with a 400 naming it."""

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.builders import API_BASE as BASE

NAMES = [("Zeta", "Quillfeather"), ("Alpha", "Brackenridge"), ("Mu", "Oddington")]


@pytest.fixture
def patients(make_patient):
    return [
        make_patient(mrn=f"CUR-{i}", given_name=given, family_name=family) for i, (given, family) in enumerate(NAMES)
    ]


def decoded_cursor(link: str) -> str:
    cursor = parse_qs(urlsplit(link).query)["cursor"][0]
    return base64.b64decode(cursor.encode()).decode()


@pytest.mark.parametrize("ordering", [None, "id", "-id", "updated_at", "-updated_at"])
def test_no_cursor_of_the_patient_list_carries_patient_data(ehr, patients, ordering):
    query = {"page_size": 1} | ({"ordering": ordering} if ordering else {})
    page = ehr.get(f"{BASE}/patients/", query).json()
    second = ehr.get(page["next"]).json()

    for link in (page["next"], second["next"], second["previous"]):
        cursor = decoded_cursor(link)
        for patient in patients:
            for value in (patient.family_name, patient.given_name, patient.mrn, patient.birth_date.isoformat()):
                assert value not in cursor, cursor


@pytest.mark.parametrize("ordering", ["family_name", "-family_name", "id,given_name", "mrn", "-birth_date"])
def test_ordering_by_a_patient_field_is_a_400_naming_it(ehr, patients, ordering):
    response = ehr.get(f"{BASE}/patients/", {"ordering": ordering, "page_size": 1})

    assert response.status_code == 400
    assert ordering.split(",")[-1].lstrip("-") in response.json()["ordering"][0]
