"""PHI hygiene: a whole flow run with sentinel patient data, then every e-mail subject, system-made
URL, log line, queued task message and webhook header it produced is scanned: no name, MRN or birth
date anywhere."""

import base64
import json
import logging
import re
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core import mail
from django.utils import timezone

from alerts.checkins import sweep_checkins
from alerts.digests import sweep_digests
from alerts.escalation import sweep_escalations
from alerts.models import Delivery, DeliveryState, WebhookEndpoint
from alerts.outbox import deliver
from alerts.reminders import sweep_reminders
from interop.auth import create_api_client
from patients.models import Checkpoint
from tests.builders import form_answers

GIVEN, FAMILY, MRN, BORN = "Zyxwvsentinel", "Qqqsentinelfam", "MRNSENT0001", "1944-02-29"
SENTINELS = [GIVEN, FAMILY, MRN, BORN, "29/02/1944", "02/29/1944", "29 February 1944"]
SECRET = "whsec_" + base64.b64encode(b"phi-hygiene-webhook-secret-0001").decode()
URL = re.compile(r"https?://[^\s\"'<>]+")


def leaks(text: str) -> list[str]:
    return [sentinel for sentinel in SENTINELS if sentinel.lower() in text.lower()]


def deliver_pending() -> None:
    """Every pending delivery, each at its due moment (sweeps here run for simulated moments)."""
    for delivery in Delivery.objects.filter(state=DeliveryState.PENDING).order_by("id"):
        deliver(delivery_id=delivery.pk, now=max(timezone.now(), delivery.next_attempt_at))


@pytest.mark.hazard("HAZ-14")
@pytest.mark.django_db
def test_no_name_mrn_or_birth_date_leaves_in_subjects_urls_logs_task_messages_or_webhook_headers(
    client,
    clinic,
    coordinator,
    clinician,
    webhook_receiver,
    purged_broker,
    caplog,
    django_capture_on_commit_callbacks,
):
    caplog.set_level(logging.DEBUG)
    WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)
    _, token = create_api_client(name="EHR", clinics=[clinic], scopes=["read", "write"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    responses = []
    today = timezone.localdate()

    with django_capture_on_commit_callbacks(execute=True):
        patient = client.post(
            "/api/v1/patients/",
            {
                "mrn": MRN,
                "given_name": GIVEN,
                "family_name": FAMILY,
                "birth_date": BORN,
                "timezone": "Europe/London",
                "email": "sentinel@example.invalid",
                "email_consent": True,
            },
            content_type="application/json",
            **auth,
        )
        responses.append(patient)
        patient_id = patient.json()["id"]
        from patients.models import Patient

        Patient.objects.filter(pk=patient_id).update(responsible_clinician=clinician)
        responses.append(
            client.put(
                f"/api/v1/patients/by-mrn/{MRN}/",
                {
                    "given_name": GIVEN,
                    "family_name": FAMILY,
                    "birth_date": BORN,
                    "timezone": "Europe/London",
                    "email": "sentinel@example.invalid",
                    "email_consent": True,
                },
                content_type="application/json",
                **auth,
            )
        )
        responses.append(
            client.post(
                "/api/v1/procedures/",
                {
                    "patient": patient_id,
                    "kind": "kyphoplasty",
                    "performed_on": (today - timedelta(days=1)).isoformat(),
                    "fracture_diagnosed_on": (today - timedelta(days=75)).isoformat(),
                    "levels": [{"level": "L1"}],
                },
                content_type="application/json",
                **auth,
            )
        )

        # Reminders, the day-1 check-in invitation, a digest: as the sweeps write them.
        for checkpoint in Checkpoint.objects.filter(next_reminder_at__isnull=False):
            moment = max(checkpoint.next_reminder_at, timezone.now()).replace(hour=10)
            sweep_reminders(now=moment)
            sweep_checkins(now=moment)
        sweep_digests(now=timezone.now().replace(hour=10) + timedelta(days=1))
        deliver_pending()

        link = next(u for m in mail.outbox for u in URL.findall(m.body) if "/c/" in u)
        responses.append(client.get(link.replace(settings.SITE_URL, "")))
        answers = form_answers(
            **{
                "RF-01": "yes",
                "pain_now": "6",
                "pain_average_24h": "5",
                "painkillers": "none",
                "doing_physio": "no",
                "SO-2": "no",
            }
        )
        responses.append(client.post("/checkin/", answers))
        responses.append(client.get("/checkin/done/"))
        sweep_escalations(now=timezone.now() + timedelta(minutes=15))
        deliver_pending()
        ack = next(u for m in mail.outbox for u in URL.findall(m.body) if "/ack/" in u)
        responses.append(client.post(ack.replace(settings.SITE_URL, ""), {"note": "seen"}))
        deliver_pending()

    assert Delivery.objects.filter(kind="alert").exists() and webhook_receiver.requests
    findings = []
    for message in mail.outbox:
        findings += [("subject", message.subject, leak) for leak in leaks(message.subject)]
        for url in URL.findall(message.body + "".join(alt[0] for alt in message.alternatives)):
            findings += [("e-mail link", url, leak) for leak in leaks(url)]
        for name, value in message.extra_headers.items():
            findings += [("e-mail header", f"{name}: {value}", leak) for leak in leaks(str(value))]
    for response in responses:
        location = response.headers.get("Location", "")
        findings += [("redirect", location, leak) for leak in leaks(location)]
    for record in caplog.records:
        line = record.getMessage()
        findings += [("log", line, leak) for leak in leaks(line)]
    queue = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queued = [raw.decode() for raw in queue.lrange("celery", 0, -1)]
    assert queued, "no task message reached the broker; nothing was scanned"
    for raw in queued:
        body = json.loads(raw)
        decoded = base64.b64decode(body["body"]).decode()
        findings += [("task message", decoded, leak) for leak in leaks(decoded + json.dumps(body["headers"]))]
    for request in webhook_receiver.requests:
        headers = json.dumps(request["headers"])
        findings += [("webhook header", headers, leak) for leak in leaks(headers)]
        findings += [("webhook body", request["body"].decode(), leak) for leak in leaks(request["body"].decode())]

    assert findings == []
