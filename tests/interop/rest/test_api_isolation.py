"""Clinic isolation over the REST API: every endpoint, every kind of caller.

Northside's EHR may read and change Northside's data. Nobody else may see or touch it: no token and a
revoked token are 401; Southside's token and Southside's coordinator (Olivia) get 404 for Northside's
objects, lists without Northside's rows, and a 400 field error when a write names Northside's patient
or clinic; a read-only token is 403 on every write. A refused call writes nothing.

The outcomes are written to artifacts/api-authorisation-matrix.md.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from alerts import reports
from interop.auth import hash_token
from patients.models import ApiClient, ClinicMembership, StaffRole
from tests.builders import API_BASE as BASE
from tests.builders import changed_tables, snapshot

pytestmark = pytest.mark.usefixtures("fresh_throttle")

MATRIX_PATH = Path(settings.BASE_DIR) / "artifacts" / "api-authorisation-matrix.md"
OUTCOMES: dict[tuple[str, str], tuple[int, str, bool]] = {}  # (endpoint, caller) -> (status, expected, as expected)

ANONYMOUS = "no token"
REVOKED = "revoked token"
OTHER_TOKEN = "Southside token"
OTHER_SESSION = "Southside coordinator session"
READ_ONLY = "read-only token"
WRITER = "Northside read+write token"
CALLERS = [ANONYMOUS, REVOKED, OTHER_TOKEN, OTHER_SESSION, READ_ONLY, WRITER]
OUTSIDERS = {OTHER_TOKEN, OTHER_SESSION}


@dataclass
class World:
    """Northside: Ana with a procedure, its schedule, a report and two open alerts. Southside: Sam, the same."""

    clinic: object
    other_clinic: object
    patient: object
    procedure: object
    report: object
    alerts: list
    checkpoints: list
    other_patient: object
    other_procedure: object
    other_report: object
    callers: dict[str, APIClient]


@pytest.fixture
def world(clinic, other_clinic, make_patient, make_procedure, make_token, bearer, other_clinic_coordinator):
    patient = make_patient(mrn="NS-0001", given_name="Ana")
    procedure = make_procedure(patient=patient)
    report = reports.submit_report(procedure=procedure, source="api", pain_now=4, red_flags=["RF-02", "RF-05"])
    other_patient = make_patient(clinic=other_clinic, mrn="SS-0001", given_name="Sam", time_zone="America/New_York")
    other_procedure = make_procedure(patient=other_patient)
    other_report = reports.submit_report(procedure=other_procedure, source="api", pain_now=4, red_flags=["RF-02"])

    revoked = make_token(clinics=[clinic])
    ApiClient.objects.filter(token_hash=hash_token(revoked)).update(revoked_at=timezone.now())
    session = APIClient()
    session.force_login(other_clinic_coordinator)
    callers = {
        ANONYMOUS: bearer(None),
        REVOKED: bearer(revoked),
        OTHER_TOKEN: bearer(make_token(clinics=[other_clinic])),
        OTHER_SESSION: session,
        READ_ONLY: bearer(make_token(clinics=[clinic], scopes=["read"])),
        WRITER: bearer(make_token(clinics=[clinic])),
    }
    open_checkpoints = list(procedure.checkpoints.filter(code__in=["CP-01", "CP-02", "CP-03"]).order_by("code"))
    assert len(open_checkpoints) == 3, "the standard plan starts with CP-01, CP-02 and CP-03"
    return World(
        clinic=clinic,
        other_clinic=other_clinic,
        patient=patient,
        procedure=procedure,
        report=report,
        alerts=list(report.patient.alerts.order_by("code")),
        checkpoints=open_checkpoints,
        other_patient=other_patient,
        other_procedure=other_procedure,
        other_report=other_report,
        callers=callers,
    )


@dataclass
class Endpoint:
    """One endpoint: `kind` is list, object (an id in the URL) or create (the body names the patient or clinic)."""

    name: str
    method: str
    kind: str
    url: Callable[[World], str]
    body: Callable[[World, str], dict] | None = None
    owned: Callable[[World], set] | None = None  # list endpoints: Northside's row ids
    outsider_error_field: str | None = None  # create endpoints: the field an outsider's body is refused on

    @property
    def writes(self) -> bool:
        return self.method != "get"


def today_plus(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


def patient_body(world: World, caller: str) -> dict:
    body = {
        "mrn": "NS-0002",
        "given_name": "Bea",
        "family_name": "Example",
        "birth_date": "1950-02-03",
        "timezone": "Europe/London",
    }
    return body | ({"clinic": world.clinic.slug} if caller in OUTSIDERS else {})


def procedure_body(world: World, caller: str) -> dict:
    return {
        "patient": world.patient.pk,
        "kind": "vertebroplasty",
        "performed_on": today_plus(0),
        "fracture_diagnosed_on": today_plus(-3),
        "levels": [{"level": "L2"}],
    }


def upsert_body(world: World, caller: str) -> dict:
    body = {"given_name": "Ana", "family_name": "Changed", "birth_date": "1949-01-01", "timezone": "Europe/London"}
    return body | ({"clinic": world.clinic.slug} if caller in OUTSIDERS else {})


ENDPOINTS = [
    Endpoint("GET /patients/", "get", "list", lambda w: f"{BASE}/patients/", owned=lambda w: {w.patient.pk}),
    Endpoint("GET /patients/{id}/", "get", "object", lambda w: f"{BASE}/patients/{w.patient.pk}/"),
    Endpoint("GET /patients/{id}/risk/", "get", "object", lambda w: f"{BASE}/patients/{w.patient.pk}/risk/"),
    Endpoint(
        "POST /patients/", "post", "create", lambda w: f"{BASE}/patients/", patient_body, outsider_error_field="clinic"
    ),
    Endpoint(
        "PATCH /patients/{id}/",
        "patch",
        "object",
        lambda w: f"{BASE}/patients/{w.patient.pk}/",
        lambda w, c: {"phone": "+44 20 7946 0000"},
    ),
    Endpoint(
        "PUT /patients/by-mrn/{mrn}/",
        "put",
        "create",
        lambda w: f"{BASE}/patients/by-mrn/{w.patient.mrn}/",
        upsert_body,
        outsider_error_field="clinic",
    ),
    Endpoint("GET /procedures/", "get", "list", lambda w: f"{BASE}/procedures/", owned=lambda w: {w.procedure.pk}),
    Endpoint("GET /procedures/{id}/", "get", "object", lambda w: f"{BASE}/procedures/{w.procedure.pk}/"),
    Endpoint(
        "POST /procedures/",
        "post",
        "create",
        lambda w: f"{BASE}/procedures/",
        procedure_body,
        outsider_error_field="patient",
    ),
    Endpoint(
        "GET /checkpoints/",
        "get",
        "list",
        lambda w: f"{BASE}/checkpoints/?page_size=500",
        owned=lambda w: set(w.procedure.checkpoints.values_list("pk", flat=True)),
    ),
    Endpoint("GET /checkpoints/{id}/", "get", "object", lambda w: f"{BASE}/checkpoints/{w.checkpoints[0].pk}/"),
    Endpoint(
        "POST /checkpoints/{id}/complete/",
        "post",
        "object",
        lambda w: f"{BASE}/checkpoints/{w.checkpoints[0].pk}/complete/",
        lambda w, c: {"notes": "Phoned, doing well", "pain_score": 3},
    ),
    Endpoint(
        "POST /checkpoints/{id}/reschedule/",
        "post",
        "object",
        lambda w: f"{BASE}/checkpoints/{w.checkpoints[1].pk}/reschedule/",
        lambda w, c: {"target_date": today_plus(20), "reason": "Patient away"},
    ),
    Endpoint(
        "POST /checkpoints/{id}/cancel/",
        "post",
        "object",
        lambda w: f"{BASE}/checkpoints/{w.checkpoints[2].pk}/cancel/",
        lambda w, c: {"reason": "Seen in clinic instead"},
    ),
    Endpoint(
        "GET /symptom-reports/", "get", "list", lambda w: f"{BASE}/symptom-reports/", owned=lambda w: {w.report.pk}
    ),
    Endpoint("GET /symptom-reports/{id}/", "get", "object", lambda w: f"{BASE}/symptom-reports/{w.report.pk}/"),
    Endpoint(
        "POST /symptom-reports/",
        "post",
        "create",
        lambda w: f"{BASE}/symptom-reports/",
        lambda w, c: {"patient": w.patient.pk, "pain_now": 2},
        outsider_error_field="patient",
    ),
    Endpoint("GET /alerts/", "get", "list", lambda w: f"{BASE}/alerts/", owned=lambda w: {a.pk for a in w.alerts}),
    Endpoint("GET /alerts/{id}/", "get", "object", lambda w: f"{BASE}/alerts/{w.alerts[0].pk}/"),
    Endpoint(
        "POST /alerts/{id}/acknowledge/",
        "post",
        "object",
        lambda w: f"{BASE}/alerts/{w.alerts[0].pk}/acknowledge/",
        lambda w, c: {"note": "Calling the patient"},
    ),
    Endpoint(
        "POST /alerts/{id}/resolve/",
        "post",
        "object",
        lambda w: f"{BASE}/alerts/{w.alerts[1].pk}/resolve/",
        lambda w, c: {"reason": "no_action", "note": "Examined: no deficit"},
    ),
    # The protocol is per clinic: asking for Northside's is asking for a Northside object.
    Endpoint("GET /protocol/?clinic={slug}", "get", "object", lambda w: f"{BASE}/protocol/?clinic={w.clinic.slug}"),
]


def expected_status(endpoint: Endpoint, caller: str) -> set[int]:
    if caller in (ANONYMOUS, REVOKED):
        return {401}
    if caller == READ_ONLY:
        return {403} if endpoint.writes else {200}
    if caller in OUTSIDERS:
        return {"list": {200}, "object": {404}, "create": {400}}[endpoint.kind]
    return {201} if endpoint.method == "post" and endpoint.kind == "create" else {200}  # by-mrn: Ana exists


def call(client: APIClient, endpoint: Endpoint, world: World, caller: str):
    url = endpoint.url(world)
    if endpoint.method == "get":
        return client.get(url)
    return getattr(client, endpoint.method)(url, endpoint.body(world, caller), format="json")


def problems_with(endpoint: Endpoint, caller: str, response, world: World, before: dict, after: dict) -> list[str]:
    found = []
    written = changed_tables(before, after)
    if caller == WRITER and endpoint.writes and not written:
        found.append("answered 2xx but changed nothing")
    if (caller != WRITER or not endpoint.writes) and written:
        found.append(f"wrote to {', '.join(written)}")
    if response.status_code not in expected_status(endpoint, caller):
        found.append(f"status {response.status_code}, expected {sorted(expected_status(endpoint, caller))}")
        return found
    body = response.json()
    if endpoint.kind == "list" and caller in OUTSIDERS:
        ids = {row["id"] for row in body["results"]}
        if ids & endpoint.owned(world):
            found.append(f"list shows Northside rows {sorted(ids & endpoint.owned(world))}")
        if not ids:
            found.append("list is empty: Southside's own rows are missing, so the scoping is not what is tested")
    if endpoint.kind == "list" and caller in (READ_ONLY, WRITER):
        missing = endpoint.owned(world) - {row["id"] for row in body["results"]}
        if missing:
            found.append(f"list lacks Northside rows {sorted(missing)}")
    if endpoint.kind == "create" and caller in OUTSIDERS and endpoint.outsider_error_field not in body:
        found.append(f"400 without a {endpoint.outsider_error_field!r} field error: {body}")
    return found


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_only_northside_callers_with_the_right_scope_reach_northside_data(endpoint, world):
    """Every caller in turn; the writer goes last, since its call changes the data."""
    problems = []
    for caller in CALLERS:
        before = snapshot()
        response = call(world.callers[caller], endpoint, world, caller)
        after = snapshot()
        found = problems_with(endpoint, caller, response, world, before, after)
        expected = "/".join(str(s) for s in sorted(expected_status(endpoint, caller)))
        OUTCOMES[(endpoint.name, caller)] = (response.status_code, expected, not found)
        problems += [f"{caller}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)


def test_a_refused_bearer_token_is_told_to_authenticate_with_bearer(world):
    response = world.callers[REVOKED].get(f"{BASE}/patients/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert "Ana" not in response.content.decode()


@pytest.mark.parametrize(
    "path, parameter",
    [
        ("procedures", "patient"),
        ("symptom-reports", "patient"),
        ("symptom-reports", "procedure"),
        ("alerts", "patient"),
        ("checkpoints", "procedure"),
        ("checkpoints", "patient"),
    ],
)
def test_southside_cannot_tell_a_northside_id_from_one_that_never_existed(world, path, parameter):
    """A list filter naming Northside's patient or procedure must answer exactly as for an unused id;
    otherwise Southside can enumerate which ids exist in other clinics (ASVS 4.2.1)."""
    northside_id = world.patient.pk if parameter == "patient" else world.procedure.pk
    never_used = 10_000_000
    southside = world.callers[OTHER_TOKEN]
    existing = southside.get(f"{BASE}/{path}/", {parameter: northside_id})
    missing = southside.get(f"{BASE}/{path}/", {parameter: never_used})
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


def test_searching_for_a_northside_mrn_finds_nothing_for_southside(world):
    response = world.callers[OTHER_TOKEN].get(f"{BASE}/patients/", {"search": world.patient.mrn})
    assert response.status_code == 200 and response.json()["results"] == []


def test_southside_reusing_northsides_idempotency_key_gets_its_own_patient_not_northsides(world):
    body = {"mrn": "SHARED-1", "given_name": "Kim", "family_name": "Doe", "birth_date": "1950-01-01"}
    body["timezone"] = "Europe/London"
    headers = {"HTTP_IDEMPOTENCY_KEY": "ehr-retry-0001"}
    northside = world.callers[WRITER].post(f"{BASE}/patients/", body, format="json", **headers)
    southside = world.callers[OTHER_TOKEN].post(f"{BASE}/patients/", body, format="json", **headers)
    assert (northside.status_code, southside.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in southside
    assert (northside.json()["clinic"], southside.json()["clinic"]) == ("northside", "southside")
    assert northside.json()["id"] != southside.json()["id"]


def test_a_northside_auditor_who_coordinates_at_southside_still_cannot_change_northside_patients(
    world, django_user_model
):
    """Write rights come from the role in the patient's clinic, not from a role anywhere."""
    mixed = django_user_model.objects.create_user(username="max", password="x-long-password-1", is_staff=True)
    ClinicMembership.objects.create(user=mixed, clinic=world.clinic, role=StaffRole.AUDITOR)
    ClinicMembership.objects.create(user=mixed, clinic=world.other_clinic, role=StaffRole.COORDINATOR)
    session = APIClient()
    session.force_login(mixed)
    before = snapshot()

    response = session.patch(f"{BASE}/patients/{world.patient.pk}/", {"phone": "+442079460001"}, format="json")

    assert response.status_code == 403
    assert changed_tables(before, snapshot()) == []


def test_the_authorisation_matrix_is_written_and_complete():
    """Runs last in this module: every endpoint × caller has an outcome, written for reviewers."""
    lines = [
        "# API authorisation matrix",
        "",
        "Written by `tests/interop/rest/test_api_isolation.py`. Each cell: status received (expected); ✗ marks a",
        "cell that broke the rule (wrong status, a write by a refused caller, or another clinic's rows shown).",
        "",
        "| endpoint | " + " | ".join(CALLERS) + " |",
        "|---|" + "---|" * len(CALLERS),
    ]
    for endpoint in ENDPOINTS:
        cells = []
        for caller in CALLERS:
            status, expected, ok = OUTCOMES.get((endpoint.name, caller), ("–", "?", False))
            cells.append(f"{status} ({expected})" + ("" if ok else " ✗"))
        lines.append(f"| `{endpoint.name}` | " + " | ".join(cells) + " |")
    MATRIX_PATH.parent.mkdir(exist_ok=True)
    MATRIX_PATH.write_text("\n".join(lines) + "\n")

    missing = [(e.name, c) for e in ENDPOINTS for c in CALLERS if (e.name, c) not in OUTCOMES]
    assert not missing, f"the matrix tests did not run for {missing[:5]}…"
