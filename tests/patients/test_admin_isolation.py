"""A coordinator of another clinic gets nothing of this clinic in the admin: lists, change pages,
search, autocomplete, worklist actions or the KPI export."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def northside_patient(make_procedure, make_patient):
    patient = make_patient(mrn="NORTH-77", family_name="Northsider")
    make_procedure(patient=patient)
    return patient


def test_search_finds_nothing_of_another_clinic(client, coordinator, other_clinic_coordinator, northside_patient):
    client.force_login(coordinator)
    search = {"_search": "1", "q": "NORTH-77"}  # the search form posts: the words stay out of the URL
    own = client.post(reverse("admin:patients_patient_changelist"), search, follow=True)
    assert own.context["cl"].result_count == 1
    client.force_login(other_clinic_coordinator)

    for url in (
        "admin:patients_patient_changelist",
        "admin:patients_procedure_changelist",
        "admin:patients_checkpoint_changelist",
    ):
        response = client.post(reverse(url), search, follow=True)
        assert response.context["cl"].result_count == 0, url
        assert "Northsider" not in response.content.decode(), url


def test_autocomplete_offers_nothing_of_another_clinic(
    client, coordinator, other_clinic_coordinator, northside_patient
):
    url = reverse("admin:autocomplete")
    params = {"app_label": "patients", "model_name": "procedure", "field_name": "patient", "term": "Northsider"}

    client.force_login(coordinator)
    assert [r["id"] for r in client.get(url, params).json()["results"]] == [str(northside_patient.pk)]
    client.force_login(other_clinic_coordinator)
    assert client.get(url, params).json()["results"] == []


def test_change_pages_and_the_kpi_export_of_another_clinic_are_out_of_reach(
    client, other_clinic_coordinator, northside_patient, clinic
):
    client.force_login(other_clinic_coordinator)

    change = client.get(reverse("admin:patients_patient_change", args=[northside_patient.pk]))
    overview = client.get(reverse("admin:patient-overview", args=[northside_patient.pk]))
    export = client.get(reverse("kpis"), {"clinic": clinic.slug, "format": "csv"})

    assert change.status_code == 302 and overview.status_code == 404
    assert export.status_code == 400 and "NORTH-77" not in export.content.decode()
