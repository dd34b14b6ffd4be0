"""An EHR integrator's whole journey over HTTP only: token, patient, procedure, schedule, red-flag
report, signed webhook, acknowledgement."""

import base64
import io
import time

import pytest
import requests
from django.core.management import call_command
from standardwebhooks import Webhook

from alerts.models import WebhookEndpoint
from tests.processes import wait_until

SECRET = "whsec_" + base64.b64encode(b"ehr-shared-secret-for-this-test!").decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_ehr_registers_a_patient_reports_a_red_flag_and_acknowledges_the_signed_alert(
    live_server, clinic, clinician, worker, smtp_server, webhook_receiver
):
    WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET, events=["alert.raised"])
    worker(env={"EMAIL_URL": smtp_server.url})
    out = io.StringIO()
    call_command("create_api_client", clinic=[clinic.slug], scopes="read,write", name="Test EHR", stdout=out)
    token = out.getvalue().strip()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    base = f"{live_server.url}/api/v1"

    patient = api.post(
        f"{base}/patients/",
        json={
            "mrn": "E2E-1",
            "given_name": "Ana",
            "family_name": "Example",
            "birth_date": "1948-05-01",
            "timezone": "Europe/London",
            "email": "ana@example.invalid",
            "email_consent": True,
        },
        headers={"Idempotency-Key": "patient-E2E-1"},
    )
    assert patient.status_code == 201, patient.text
    patient_id = patient.json()["id"]
    changed = api.patch(f"{base}/patients/{patient_id}/", json={"bmi": "22.5", "regular_outdoor_activity": True})
    assert changed.status_code == 200 and changed.json()["bmi"] == "22.5"

    from patients.models import Patient

    Patient.objects.filter(pk=patient_id).update(responsible_clinician=clinician)  # set by the clinic's admin
    procedure = api.post(
        f"{base}/procedures/",
        json={
            "patient": patient_id,
            "kind": "kyphoplasty",
            "performed_on": time.strftime("%Y-%m-%d"),
            "fracture_diagnosed_on": time.strftime("%Y-%m-%d"),
            "baseline_pain": 8,
            "levels": [
                {
                    "level": "T12",
                    "cement_leakage": False,
                    "cement_distribution": "confluent",
                    "intravertebral_cleft": False,
                    "hounsfield_units": 120,
                }
            ],
            "facet_joint_violation": False,
            "posterior_fascia_oedema": False,
        },
    )
    assert procedure.status_code == 201, procedure.text

    schedule = api.get(f"{base}/checkpoints/", params={"patient": patient_id, "ordering": "due_at"})
    assert schedule.status_code == 200
    codes = [row["code"] for row in schedule.json()["results"]]
    assert codes[0] == "CP-01" and "CP-12" in codes
    risk = api.get(f"{base}/patients/{patient_id}/risk/").json()
    assert risk["tier"] in {"standard", "elevated", "high"}
    assert all(factor["source"] for factor in risk["factors"])

    report = api.post(f"{base}/symptom-reports/", json={"patient": patient_id, "pain_now": 6, "red_flags": ["RF-02"]})
    assert report.status_code == 201, report.text
    assert [(f["code"], f["tier"]) for f in report.json()["findings"]] == [("RF-02", "emergency")]

    wait_until(lambda: webhook_receiver.requests, timeout=30, message="the signed webhook")
    [hook] = webhook_receiver.requests
    event = Webhook(SECRET).verify(hook["body"], hook["headers"])
    assert event["type"] == "alert.raised"
    alert_id = event["data"]["alert"]
    wait_until(lambda: smtp_server.messages, timeout=30, message="the clinician's page")

    acknowledged = api.post(f"{base}/alerts/{alert_id}/acknowledge/", json={"note": "EHR worklist"})
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["state"] == "acknowledged"
    assert api.get(f"{base}/alerts/", params={"state": "open"}).json()["results"] == []
