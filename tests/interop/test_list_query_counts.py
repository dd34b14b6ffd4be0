"""Query discipline on what an EHR reads: every REST list (each GET of the OpenAPI schema that answers a
page or an array) and every FHIR search (each `fhir-…-type` route that answers GET) runs the same,
measured number of queries with 10 rows as with 200. The routes come from the schema and the URL
resolver, so a new list or search is measured here or fails until it is."""

import pytest
import time_machine
from django.core.cache.backends.locmem import LocMemCache
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from interop.throttling import ClientRateThrottle
from patients.models import FhirResult
from tests.builders import (
    bearer_client,
    bulk_alerts,
    bulk_checkpoints,
    bulk_patients,
    bulk_procedures,
    make_api_token,
)

pytestmark = pytest.mark.django_db

# Measured with a read token of one clinic: the token and its clinics, then the rows (and, for
# procedures, their levels in one more query); a FHIR search also counts its matches (Bundle.total).
# A change here is a change in what each request costs.
REST_QUERIES = {
    "/api/v1/alerts/": 3,
    "/api/v1/checkpoints/": 3,
    "/api/v1/patients/": 3,
    "/api/v1/procedures/": 4,
    "/api/v1/symptom-reports/": 3,
}
FHIR_QUERIES = {
    "/fhir/Flag": 4,
    "/fhir/MedicationRequest": 4,
    "/fhir/MedicationStatement": 4,
    "/fhir/Observation": 4,
    "/fhir/Patient": 4,
    "/fhir/Procedure": 5,
    "/fhir/Questionnaire": 3,
    "/fhir/QuestionnaireResponse": 4,
    "/fhir/Task": 4,
}

# Search parameters per FHIR resource; anything not listed is searched by patient.
FHIR_SEARCH = {
    "Patient": "identifier={mrn}",
    "Flag": "patient={patient}&status=active,inactive",
}


def rest_lists() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        path for path, operations in schema["paths"].items() if "get" in operations and answers_list(operations["get"])
    )


def answers_list(operation: dict) -> bool:
    content = operation["responses"].get("200", {}).get("content", {})
    schema = next(iter(content.values()), {}).get("schema", {})
    return schema.get("type") == "array" or schema.get("$ref", "").startswith("#/components/schemas/Paginated")


def fhir_searches() -> list[str]:
    return sorted(reverse(name) for name, view in url_names(get_resolver()) if is_search(name, view))


def url_names(resolver: URLResolver):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from url_names(pattern)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield pattern.name, getattr(pattern.callback, "view_class", None)


def is_search(name: str, view) -> bool:
    return name.startswith("fhir-") and name.endswith("-type") and view is not None and hasattr(view, "get")


@pytest.fixture(autouse=True)
def still_clock():
    """Time stands still, so the token's last-used stamp (written at most once a minute) is written by the
    first request only."""
    with time_machine.travel(timezone.now(), tick=False):
        yield


@pytest.fixture(autouse=True)
def fresh_throttle(monkeypatch):
    """Token ids restart with every test database; an empty request history keeps a re-run from being throttled."""
    monkeypatch.setattr(ClientRateThrottle, "cache", LocMemCache("query-count-throttle", {}))


@pytest.fixture
def ehr(clinic):
    return bearer_client(token=make_api_token(clinics=[clinic], scopes=["read"]))


@pytest.fixture
def busy_patient(make_procedure):
    """A patient with a recorded (assessed and planned) procedure, who gets many more rows below."""
    return make_procedure().patient


def add_rows(*, clinic, patient, count: int) -> None:
    """`count` more patients of `clinic`, each with a procedure, a due checkpoint, a report and an open alert;
    and `count` more procedures of `patient`, each with a due checkpoint, a report and a resolved alert."""
    mine = bulk_procedures(patients=[patient] * count)
    theirs = bulk_procedures(patients=bulk_patients(clinic=clinic, count=count))
    bulk_checkpoints(procedures=mine + theirs)
    bulk_alerts(procedures=theirs)
    bulk_alerts(procedures=mine, state="resolved")
    FhirResult.objects.bulk_create(
        FhirResult(resource_type=kind, patient=patient, code="x", resource=result_body(kind, patient))
        for kind in ("Observation", "MedicationStatement", "MedicationRequest")
        for _ in range(count)
    )


def result_body(kind: str, patient) -> dict:
    """A minimal stored FHIR result of `kind` (what the facade stores after a DXA or medication create)."""
    concept = {"text": "alendronate"}
    subject = {"reference": f"Patient/{patient.pk}"}
    if kind == "Observation":
        return {"resourceType": kind, "status": "final", "code": concept, "subject": subject}
    body = {"resourceType": kind, "status": "active", "medicationCodeableConcept": concept, "subject": subject}
    return {**body, "intent": "order"} if kind == "MedicationRequest" else body


def fhir_url(path: str, patient) -> str:
    resource = path.rstrip("/").rsplit("/", 1)[-1]
    query = FHIR_SEARCH.get(resource, "patient={patient}").format(patient=patient.pk, mrn=patient.mrn)
    return f"{path}?{query}"


def assert_fixed_queries(client, url: str, expected: int, django_assert_num_queries, rows) -> None:
    client.get(url)  # the first request stamps the token's last use and fills process-wide caches
    for count in (10, 190):
        rows(count)
        with django_assert_num_queries(expected):
            response = client.get(url)
        assert response.status_code == 200, (url, response.content[:500])


@pytest.mark.parametrize("path", rest_lists())
def test_rest_list_runs_the_same_queries_for_10_and_200_rows(
    path, ehr, clinic, busy_patient, django_assert_num_queries
):
    assert path in REST_QUERIES, f"{path} is a list nobody has measured: add its query count to REST_QUERIES"

    def rows(count):
        add_rows(clinic=clinic, patient=busy_patient, count=count)

    assert_fixed_queries(ehr, path, REST_QUERIES[path], django_assert_num_queries, rows)
    assert ehr.get(path).json()["results"], f"{path} listed nothing: add rows of its kind in add_rows"


@pytest.mark.parametrize("path", fhir_searches())
def test_fhir_search_runs_the_same_queries_for_10_and_200_rows(
    path, ehr, clinic, busy_patient, django_assert_num_queries
):
    assert path in FHIR_QUERIES, f"{path} is a search nobody has measured: add its query count to FHIR_QUERIES"
    url = fhir_url(path, busy_patient)

    def rows(count):
        add_rows(clinic=clinic, patient=busy_patient, count=count)

    assert_fixed_queries(ehr, url, FHIR_QUERIES[path], django_assert_num_queries, rows)
    assert ehr.get(url).json()["total"] > 0, f"{url} found nothing: add rows of its kind in add_rows"
