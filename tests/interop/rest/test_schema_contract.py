"""What a client generated from `/api/schema/` relies on: a schema that validates without warnings, one
documented error body on every error response, descriptions written for integrators, the patient's email
null when there is none, the time zone a validated string, 409 with the current state for an action on an
object that has already moved on, and `Idempotency-Key` on those actions."""

import inspect
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from alerts import reports
from alerts.models import AlertEvent
from patients.models import CheckpointEvent, Patient

BASE = "/api/v1"

pytestmark = pytest.mark.usefixtures("fresh_throttle")


def new_patient(**fields) -> dict:
    body = {"mrn": "SC-1", "given_name": "Bea", "family_name": "Ex", "birth_date": "1950-02-03"}
    return body | {"timezone": "Europe/London"} | fields


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_the_schema_validates_without_a_warning():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert out.getvalue().startswith("openapi: 3.0")


def test_every_error_response_has_the_one_documented_error_body(schema):
    error_responses = 0
    for name, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                error_responses += 1
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }, f"{name} {status}"
                assert response["description"], f"{name} {status}"
    assert error_responses > 150
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"detail", "current_state", "non_field_errors"}


def test_an_api_url_that_matches_no_route_is_a_404_with_the_error_body(ehr, client):
    for path in (f"{BASE}/alerts/0.5/acknowledge/", f"{BASE}/symptom-reports/1e-9/", f"{BASE}/nothing-here/"):
        answer = ehr.post(path, {}, format="json") if path.endswith("acknowledge/") else ehr.get(path)
        assert answer.status_code == 404 and answer["Content-Type"] == "application/json", path
        assert answer.json() == {"detail": "Not found."}
    assert client.get("/nothing-here/")["Content-Type"].startswith("text/html")  # the site's own page


def test_a_query_refused_with_a_bare_message_list_is_an_error_object(ehr):
    answer = ehr.get(f"{BASE}/alerts/", {"search": "\x00"})
    assert answer.status_code == 400
    assert answer.json() == {"detail": "Null characters are not allowed."}


def _internal_docstrings() -> set[str]:
    """Every docstring drf-spectacular could fall back on: each view class (and its bases) and each handler."""
    generator = SchemaGenerator()
    generator._initialise_endpoints()
    found = set()
    for _path, _regex, method, callback in generator.endpoints:
        view = callback.cls
        handler = getattr(view, (getattr(callback, "actions", None) or {}).get(method.lower(), method.lower()))
        for owner in [*view.__mro__, handler]:
            doc = inspect.getdoc(owner)
            if doc:
                found.add(doc.split("\n")[0])
    return found


def test_every_operation_has_a_description_for_integrators_and_no_internal_docstring(schema):
    internal = _internal_docstrings()
    assert any("get_queryset" in doc for doc in internal)  # the check sees the mixin that once leaked
    for name, operation in operations(schema):
        description = operation.get("description", "")
        assert len(description) > 40 and operation.get("summary"), name
        assert not any(doc in description for doc in internal), name


def test_the_time_zone_is_a_string_checked_against_the_zone_database(schema, ehr):
    declared = schema["components"]["schemas"]["PatientRequest"]["properties"]["timezone"]
    assert declared["type"] == "string" and "enum" not in declared and "$ref" not in declared

    refused = ehr.post(f"{BASE}/patients/", new_patient(timezone="Mars/Olympus_Mons"), format="json")
    assert refused.status_code == 400
    assert refused.json() == {"timezone": ["Not an IANA time zone name; use one such as Europe/London."]}
    assert not Patient.objects.exists()

    for mrn, zone in [("SC-2", "GMT0"), ("SC-3", "America/Argentina/Buenos_Aires")]:
        created = ehr.post(f"{BASE}/patients/", new_patient(mrn=mrn, timezone=zone), format="json")
        assert created.status_code == 201 and created.json()["timezone"] == zone


def test_the_email_is_null_when_the_patient_has_none(schema, ehr):
    for name in ("Patient", "PatientRequest"):
        declared = schema["components"]["schemas"][name]["properties"]["email"]
        assert declared["format"] == "email" and declared["nullable"] is True and "minLength" not in declared

    omitted = ehr.post(f"{BASE}/patients/", new_patient(), format="json")
    assert omitted.status_code == 201 and omitted.json()["email"] is None
    sent_null = ehr.post(f"{BASE}/patients/", new_patient(mrn="SC-2", email=None), format="json")
    assert sent_null.status_code == 201 and sent_null.json()["email"] is None
    with_email = ehr.post(f"{BASE}/patients/", new_patient(mrn="SC-3", email="bea@example.invalid"), format="json")
    assert with_email.json()["email"] == "bea@example.invalid"

    patient_id = with_email.json()["id"]
    cleared = ehr.patch(f"{BASE}/patients/{patient_id}/", {"email": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["email"] is None
    assert Patient.objects.get(pk=patient_id).email == ""  # none is stored as it always was
    blank = ehr.patch(f"{BASE}/patients/{patient_id}/", {"email": ""}, format="json")
    assert blank.status_code == 200 and blank.json()["email"] is None
    listed = ehr.get(f"{BASE}/patients/").json()["results"]
    assert {row["email"] for row in listed} == {None}

    bad = ehr.patch(f"{BASE}/patients/{patient_id}/", {"email": "not-an-address"}, format="json")
    assert bad.status_code == 400 and list(bad.json()) == ["email"]


@pytest.fixture
def alerted(make_procedure):
    """A procedure whose patient reported two red flags: two open alerts."""
    procedure = make_procedure()
    reports.submit_report(procedure=procedure, source="api", pain_now=4, red_flags=["RF-02", "RF-05"])
    return procedure, list(procedure.patient.alerts.order_by("id"))


def test_acting_on_an_alert_that_has_moved_on_is_a_409_naming_its_state(ehr, alerted):
    _, (alert, _) = alerted
    url = f"{BASE}/alerts/{alert.pk}"
    assert ehr.post(f"{url}/acknowledge/", {"note": "on it"}, format="json").status_code == 200
    events = AlertEvent.objects.filter(alert=alert).count()

    again = ehr.post(f"{url}/acknowledge/", {}, format="json")
    assert again.status_code == 409
    assert again.json() == {"detail": "This alert is already acknowledged.", "current_state": "acknowledged"}

    assert (
        ehr.post(f"{url}/resolve/", {"reason": "managed", "note": "seen in clinic"}, format="json").status_code == 200
    )
    resolved_again = ehr.post(f"{url}/resolve/", {"reason": "managed", "note": "twice"}, format="json")
    assert resolved_again.status_code == 409 and resolved_again.json()["current_state"] == "resolved"
    acknowledged_late = ehr.post(f"{url}/acknowledge/", {}, format="json")
    assert acknowledged_late.json() == {"detail": "This alert is already resolved.", "current_state": "resolved"}
    assert AlertEvent.objects.filter(alert=alert).count() == events + 1  # only the resolve


def test_acting_on_a_checkpoint_that_has_moved_on_is_a_409_naming_its_state(ehr, make_procedure):
    procedure = make_procedure()
    first, second = procedure.checkpoints.filter(code__in=["CP-01", "CP-02"]).order_by("code")
    done = ehr.post(f"{BASE}/checkpoints/{first.pk}/complete/", {"pain_score": 3}, format="json")
    assert done.status_code == 200 and done.json()["state"] == "completed"
    events = CheckpointEvent.objects.filter(checkpoint=first).count()

    later = (timezone.localdate() + timedelta(days=30)).isoformat()
    for action, body in [("complete", {"pain_score": 2}), ("cancel", {}), ("reschedule", {"target_date": later})]:
        answer = ehr.post(f"{BASE}/checkpoints/{first.pk}/{action}/", body | {"reason": "x"}, format="json")
        assert answer.status_code == 409, (action, answer.content)
        assert answer.json() == {
            "detail": "Checkpoint CP-01 is completed; it can no longer change.",
            "current_state": "completed",
        }
    assert CheckpointEvent.objects.filter(checkpoint=first).count() == events
    first.refresh_from_db()
    assert first.pain_score == 3

    assert ehr.post(f"{BASE}/checkpoints/{second.pk}/cancel/", {"reason": "moved"}, format="json").status_code == 200
    cancelled = ehr.post(f"{BASE}/checkpoints/{second.pk}/complete/", {"pain_score": 1}, format="json")
    assert cancelled.status_code == 409 and cancelled.json()["current_state"] == "cancelled"


def test_a_retried_action_with_its_idempotency_key_gets_the_first_answer_not_a_409(ehr, alerted, schema):
    _, (alert, other) = alerted
    key = {"HTTP_IDEMPOTENCY_KEY": "ack-1"}
    first = ehr.post(f"{BASE}/alerts/{alert.pk}/acknowledge/", {"note": "on it"}, format="json", **key)
    retried = ehr.post(f"{BASE}/alerts/{alert.pk}/acknowledge/", {"note": "on it"}, format="json", **key)
    assert first.status_code == retried.status_code == 200
    assert retried.json() == first.json() and retried["Idempotent-Replayed"] == "true"
    assert AlertEvent.objects.filter(alert=alert, kind=AlertEvent.Kind.ACKNOWLEDGED).count() == 1

    # The same key for another alert is another request: refused, never answered with the first alert.
    elsewhere = ehr.post(f"{BASE}/alerts/{other.pk}/acknowledge/", {"note": "on it"}, format="json", **key)
    assert elsewhere.status_code == 422
    other.refresh_from_db()
    assert other.state == "open"

    for name, operation in operations(schema):
        if name.startswith("POST") and name.endswith(
            ("/acknowledge/", "/resolve/", "/complete/", "/cancel/", "/reschedule/")
        ):
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert "Idempotency-Key" in headers and {"409", "422"} <= set(operation["responses"]), name
