"""Redis is never on the path that records a red flag. With the broker and cache Redis stopped (the
database up), an EMERGENCY report from the patient's check-in form, a coordinator's phone entry, the
REST API and FHIR is saved and evaluated, the patient sees the call-emergency-services instruction, no
request answers a 5xx, and every clinician page goes out within 60 s of Redis coming back."""

import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert, CheckIn, CheckInLink, Delivery, DeliveryKind, SymptomReport, new_token
from interop.auth import create_api_client
from tests.builders import form_answers
from tests.processes import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

EMERGENCY = "Call emergency services now"
SOURCES = {"form", "phone", "api", "fhir"}


def checkin_link(procedure) -> str:
    checkin = CheckIn.objects.create(patient=procedure.patient, procedure=procedure, reason="CP-01")
    raw, digest = new_token()
    CheckInLink.objects.create(checkin=checkin, token_hash=digest, expires_at=timezone.now() + timedelta(days=1))
    return f"/c/{raw}/"


def fhir_response(patient_id: int) -> dict:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://kyphofollow.invalid/fhir/Questionnaire/kyphofollow-checkin",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": timezone.now().isoformat(),
        "item": [
            {"linkId": "pain_now", "answer": [{"valueInteger": 7}]},
            {"linkId": "RF-01", "answer": [{"valueBoolean": True}]},
        ],
    }


@pytest.fixture
def cache_on_broker(broker, settings):
    """This process's cache (API throttling) on the private redis-server, as configured in production."""
    settings.CACHES = {
        "default": {
            "BACKEND": "kyphofollow.cache.FailOpenRedisCache",
            "LOCATION": broker.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def report_everywhere(procedures, link: str, patient: Client, staff: Client, api: APIClient) -> tuple[dict, object]:
    """RF-01 by the check-in form, a phone entry, REST and FHIR; the responses, and the patient's
    confirmation page."""
    responses = {}
    assert patient.get(link).status_code == 302
    responses["form"] = patient.post("/checkin/", form_answers(**{"RF-01": "yes"}))
    done = patient.get("/checkin/done/")
    responses["phone"] = staff.post(
        "/admin/alerts/symptomreport/phone/",
        {
            "procedure": procedures["phone"].pk,
            "reported_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
            **form_answers(**{"RF-01": "yes"}),
        },
    )
    responses["api"] = api.post(
        "/api/v1/symptom-reports/",
        {
            "patient": procedures["api"].patient_id,
            "procedure": procedures["api"].pk,
            "pain_now": 7,
            "red_flags": ["RF-01"],
        },
        format="json",
    )
    responses["fhir"] = api.post(
        "/fhir/QuestionnaireResponse",
        data=json.dumps(fhir_response(procedures["fhir"].patient_id)),
        content_type="application/fhir+json",
    )

    return responses, done


@pytest.mark.hazard("HAZ-39")
def test_red_flags_by_form_phone_rest_and_fhir_are_saved_and_paged_with_redis_down(
    clinic,
    clinician,
    coordinator,
    make_patient,
    make_procedure,
    fault_worker,
    fault_beat,
    smtp_server,
    broker,
    cache_on_broker,
):
    procedures = {source: make_procedure(patient=make_patient(responsible_clinician=clinician)) for source in SOURCES}
    link = checkin_link(procedures["form"])
    _, token = create_api_client(name="EHR", clinics=[clinic], scopes=["read", "write"])
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    patient, staff = Client(raise_request_exception=False), Client(raise_request_exception=False)
    staff.force_login(coordinator)

    broker.kill()
    assert not broker.ping()
    responses, done = report_everywhere(procedures, link, patient, staff, api)

    statuses = {source: response.status_code for source, response in responses.items()}
    assert statuses == {"form": 302, "phone": 302, "api": 201, "fhir": 201}, statuses
    assert done.status_code == 200 and EMERGENCY in done.content.decode()
    for source, procedure in procedures.items():
        report = SymptomReport.objects.get(procedure=procedure)
        assert "RF-01" in {finding["code"] for finding in report.findings}, source
        alert = Alert.objects.get(patient=procedure.patient)
        assert (alert.code, alert.tier) == ("RF-01", "emergency")
    pages = set(Delivery.objects.filter(kind=DeliveryKind.ALERT).values_list("id", flat=True))
    assert len(pages) == 4

    broker.start()  # empty: nothing was ever queued
    returned_at = time.time()
    fault_worker(env={"EMAIL_URL": smtp_server.url})
    fault_beat()
    wait_until(lambda: len(smtp_server.messages) >= 4, timeout=90, message="the four pages after Redis returned")
    arrived = max(smtp_server.recorder.arrival_times) - returned_at
    assert arrived <= 60, f"the last page arrived {arrived:.1f} s after Redis returned"
    time.sleep(2)
    received = [int(message["X-Kyphofollow-Delivery"]) for message in smtp_server.messages]
    assert sorted(received) == sorted(pages), "each page once"
    print(f"pages arrived {arrived:.1f} s after Redis returned")
