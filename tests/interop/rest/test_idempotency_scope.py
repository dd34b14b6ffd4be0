"""An Idempotency-Key belongs to one (client, method, route): replayed by the same client to the same
endpoint it returns the first answer; sent to another endpoint or by another client it is a new request.
Stored records name the route pattern, never a path that could carry an MRN."""

import pytest

from alerts.models import SymptomReport
from patients.models import IdempotencyRecord, Procedure
from tests.builders import API_BASE as BASE


@pytest.fixture
def ana(make_procedure, make_patient):
    return make_procedure(patient=make_patient(mrn="NS-0001", given_name="Ana")).patient


def test_a_key_sent_to_another_endpoint_is_a_new_request_not_a_replay(ehr, ana):
    report = ehr.post(
        f"{BASE}/symptom-reports/", {"patient": ana.pk, "pain_now": 2}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    procedure = ehr.post(
        f"{BASE}/procedures/",
        {"patient": ana.pk, "kind": "kyphoplasty", "performed_on": "2026-01-05", "levels": [{"level": "L2"}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    assert (report.status_code, procedure.status_code) == (201, 201), procedure.content
    assert "Idempotent-Replayed" not in procedure
    assert procedure.json()["id"] == Procedure.objects.latest("id").pk
    assert SymptomReport.objects.filter(patient=ana).count() == 1


def test_a_key_sent_by_another_client_is_a_new_request_not_a_replay(ehr, ana, make_token, bearer, clinic):
    other_integration = bearer(make_token(clinics=[clinic], name="Second EHR"))
    body = {"patient": ana.pk, "pain_now": 3}

    first = ehr.post(f"{BASE}/symptom-reports/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared-key")
    second = other_integration.post(f"{BASE}/symptom-reports/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared-key")
    replay = ehr.post(f"{BASE}/symptom-reports/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared-key")

    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second and second.json()["id"] != first.json()["id"]
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert SymptomReport.objects.filter(patient=ana).count() == 2


def test_the_stored_record_names_the_route_pattern(ehr, ana):
    ehr.post(f"{BASE}/symptom-reports/", {"patient": ana.pk, "pain_now": 2}, format="json", HTTP_IDEMPOTENCY_KEY="r")

    record = IdempotencyRecord.objects.get()
    assert record.method == "POST"
    assert record.path.startswith("/api/") and record.path.rstrip("/$").endswith("symptom-reports")
