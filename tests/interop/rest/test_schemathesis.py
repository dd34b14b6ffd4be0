"""Property-based API tests: schemathesis generates valid and invalid requests for every operation of
`/api/schema/` and checks each answer against the schema (no 5xx, only documented statuses, bodies
that match their schema, invalid data refused).

The app runs in-process (WSGI) against a database where each request commits on its own, so a request
that breaks cannot poison the next. Examples are bounded so the file runs in a few minutes.
"""

import json
import zlib
from dataclasses import dataclass

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.db import connection
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from alerts import reports
from interop.throttling import ClientRateThrottle
from kyphofollow.wsgi import application

pytestmark = pytest.mark.usefixtures("fresh_throttle")

HYPOTHESIS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": list(HealthCheck),
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
}


@dataclass
class Seeded:
    """Northside data that the generated paths sometimes point at, and the EHR's auth header."""

    headers: dict[str, str]
    path_values: dict[str, dict[str, object]]  # first path segment → path parameters of a real object

    def for_path(self, path: str) -> dict[str, object] | None:
        segments = path.removeprefix("/api/v1/").split("/")
        if segments[:2] == ["patients", "by-mrn"]:
            return self.path_values["by-mrn"]
        return self.path_values.get(segments[0])


@pytest.fixture
def seeded(transactional_db, clinic, make_patient, make_procedure, make_token):
    patient = make_patient(mrn="ST-0001", given_name="Ana")
    procedure = make_procedure(patient=patient)
    report = reports.submit_report(procedure=procedure, source="api", pain_now=4, red_flags=["RF-02", "RF-05"])
    alert = patient.alerts.order_by("id").first()
    checkpoint = procedure.checkpoints.order_by("id").first()
    return Seeded(
        headers={"Authorization": f"Bearer {make_token(clinics=[clinic])}"},
        path_values={
            "patients": {"id": patient.pk},
            "by-mrn": {"mrn": patient.mrn},
            "procedures": {"id": procedure.pk},
            "checkpoints": {"id": checkpoint.pk},
            "symptom-reports": {"id": report.pk},
            "alerts": {"id": alert.pk},
        },
    )


def load_schema(seeded: Seeded | None):
    loaded = schemathesis.openapi.from_wsgi("/api/schema/", application)
    if seeded is None:
        return loaded

    @loaded.hook
    def map_case(context, case):
        """Half the valid cases (chosen by the generated values, so reproducibly) use a real Northside
        object, so that operations get past the 404 and reach their validation and writes."""
        real = seeded.for_path(case.operation.path)
        positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
        if real and case.path_parameters and positive and zlib.crc32(repr(case.path_parameters).encode()) % 2:
            case.path_parameters = {**case.path_parameters, **real}
        return case

    return loaded


@pytest.fixture
def northside_schema(seeded):
    return load_schema(seeded)


@pytest.fixture
def anonymous_schema(transactional_db):
    return load_schema(None)


northside = schemathesis.pytest.from_fixture("northside_schema")
anonymous = schemathesis.pytest.from_fixture("anonymous_schema")


@pytest.fixture
def unthrottled(monkeypatch):
    """In-process generation sends well over API_THROTTLE_RATE; a 429 would then mask every later finding.
    The 429 itself is provoked and checked on its own below."""
    monkeypatch.setattr(ClientRateThrottle, "rate", "1000000/min", raising=False)


@northside.parametrize()
@settings(max_examples=25, **HYPOTHESIS)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unthrottled")
def test_every_operation_keeps_its_documented_contract_for_northsides_ehr(case, seeded):
    """All default checks but positive_data_acceptance: the schema cannot express the clinical rules (age
    40–110, procedure after fracture, a patient id that exists in the caller's clinic), so a 400 for a
    schema-valid body is often right; test_api_writes.py checks those 400s one by one."""
    case.call_and_validate(headers=seeded.headers, excluded_checks=[positive_data_acceptance])


def reaches_a_view_that_authenticates(path: str) -> bool:
    """False for a path that matches no route (an id containing "/"), or one whose last segment reads as a
    DRF format suffix (`/patients/0.5/`: format "5"), which content negotiation refuses with 404 before
    authentication runs, without looking anything up."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return "format" not in match.kwargs


@anonymous.parametrize()
@settings(max_examples=10, **HYPOTHESIS)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unthrottled")
def test_every_operation_answers_401_to_a_caller_without_a_token(case):
    """Valid or not, a request without a token learns nothing but "authenticate"."""
    response = case.call()
    path = case.formatted_path
    expected = 401 if reaches_a_view_that_authenticates(path) else 404
    assert response.status_code == expected, f"{case.method} {path}: {response.status_code} {response.text[:200]}"


# --- Statuses the API answers with must be in the schema ------------------------------------------
# Generated requests rarely provoke these, so each is provoked on purpose and then checked by
# schemathesis' own status_code_conformance against the served schema.


def new_patient(**fields) -> dict:
    body = {"mrn": "ST-NEW", "given_name": "Bea", "family_name": "Ex", "birth_date": "1950-02-03"}
    return body | {"timezone": "Europe/London"} | fields


def provoke_413(operation, headers, monkeypatch):
    big = json.dumps(new_patient(given_name="x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))).encode()
    case = operation.Case()
    return case, case.call(headers=headers | {"Content-Type": "application/json"}, data=big)


def provoke_415(operation, headers, monkeypatch):
    case = operation.Case()
    return case, case.call(headers=headers | {"Content-Type": "text/plain"}, data=b"mrn=ST-NEW")


def provoke_422(operation, headers, monkeypatch):
    headers = headers | {"Idempotency-Key": "st-422"}
    operation.Case(body=new_patient(), media_type="application/json").call(headers=headers)
    case = operation.Case(body=new_patient(given_name="Changed"), media_type="application/json")
    return case, case.call(headers=headers)


def provoke_429(operation, headers, monkeypatch):
    monkeypatch.setattr(ClientRateThrottle, "rate", "1/min", raising=False)
    operation.Case(body=new_patient(), media_type="application/json").call(headers=headers)
    case = operation.Case(body=new_patient(mrn="ST-NEW-2"), media_type="application/json")
    return case, case.call(headers=headers)


def provoke_503(operation, headers, monkeypatch):
    """The database goes away: nothing listens on port 9, so the next query cannot connect."""
    case = operation.Case(body=new_patient(), media_type="application/json")
    connection.close()
    with monkeypatch.context() as patch:
        patch.setitem(connection.settings_dict, "PORT", "9")
        patch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
        response = case.call(headers=headers)
    connection.close()
    return case, response


PROVOKED = {413: provoke_413, 415: provoke_415, 422: provoke_422, 429: provoke_429, 503: provoke_503}


@pytest.mark.parametrize("status", PROVOKED)
@pytest.mark.django_db(transaction=True)
def test_the_schema_documents_every_status_the_api_answers_with(northside_schema, seeded, monkeypatch, status):
    operation = northside_schema["/api/v1/patients/"]["POST"]

    case, response = PROVOKED[status](operation, seeded.headers, monkeypatch)

    assert response.status_code == status, response.text[:300]
    case.validate_response(response, checks=[status_code_conformance])


@pytest.mark.django_db(transaction=True)
def test_the_schema_documents_the_idempotency_key_header(northside_schema):
    for path in ("/api/v1/patients/", "/api/v1/procedures/", "/api/v1/symptom-reports/"):
        parameters = northside_schema.raw_schema["paths"][path]["post"].get("parameters", [])
        assert ("header", "Idempotency-Key") in {(p["in"], p["name"]) for p in parameters}, path


# --- Stateful: call sequences that follow the schema's links (interop/openapi.py) ---------------------


def ids_in(body) -> set[int]:
    """Every id an EHR could take from an answer: the resource's own, its parents', each row's."""
    rows = body.get("results", []) if isinstance(body, dict) else []
    found = set()
    for row in [body, *rows]:
        if isinstance(row, dict):
            found |= {row[key] for key in ("id", "patient", "procedure") if isinstance(row.get(key), int)}
    return found


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("unthrottled")
def test_call_sequences_that_follow_the_schema_links_keep_the_documented_contract(seeded):
    """Without the map_case hook, a generated id is almost never a real object: every 2xx on an `{id}`
    operation below was reached through an id a previous answer in the same sequence handed out."""
    schema = load_schema(None)
    followed: list[str] = []

    class NorthsideEHR(schema.as_state_machine()):
        def setup(self):
            self.seen: set[int] = set()

        def get_call_kwargs(self, case):
            return {"headers": seeded.headers}

        def after_call(self, response, case):
            super().after_call(response, case)
            target = (case.path_parameters or {}).get("id")
            if 200 <= response.status_code < 300 and target in self.seen:
                followed.append(f"{case.method} {case.operation.path}")
            try:
                self.seen |= ids_in(response.json())
            except ValueError:  # not JSON
                pass

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            """As the stateless test: the clinical rules make many schema-valid bodies a right 400."""
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=[positive_data_acceptance],
                headers=seeded.headers,  # explicit credentials: the auth checks probe without them
                transport_kwargs=kwargs or None,
                recorder=getattr(self, "recorder", None),
            )

    NorthsideEHR.run(settings=settings(max_examples=60, stateful_step_count=10, **HYPOTHESIS))

    print(f"{len(followed)} calls reached a real object through an id from an earlier answer: {sorted(set(followed))}")
    assert len(set(followed)) >= 3, f"too few operations reached through links: {followed}"


def test_the_schema_links_point_at_operations_that_exist(anonymous_schema):
    raw = anonymous_schema.raw_schema
    operation_ids = {op["operationId"] for item in raw["paths"].values() for op in item.values() if "operationId" in op}
    links = [
        (operation["operationId"], status, name, link)
        for item in raw["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict)
        for status, response in operation.get("responses", {}).items()
        for name, link in response.get("links", {}).items()
    ]
    assert len(links) > 50
    assert {link["operationId"] for *_, link in links} <= operation_ids
    created = raw["paths"]["/api/v1/patients/"]["post"]["responses"]["201"]["links"]
    assert created["GetPatientRisk"] == {
        "operationId": "v1_patients_risk_retrieve",
        "parameters": {"path.id": "$response.body#/id"},
    }
