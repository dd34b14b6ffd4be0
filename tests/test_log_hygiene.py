"""No token or patient data in any log line: a flow runs through a real gunicorn (started with the
project's gunicorn.conf.py) and a real Celery worker — REST calls with an MRN in the path and the query,
a check-in link opened and answered with a red flag, the acknowledge link used — and every line gunicorn,
the worker and Django's loggers wrote is scanned for the tokens, the MRN, the names and the birth date."""

import logging
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from alerts.checkins import sweep_checkins
from alerts.escalation import sweep_escalations
from alerts.models import Alert, Delivery, DeliveryState
from alerts.outbox import sweep_deliveries
from alerts.reminders import sweep_reminders
from patients.models import Checkpoint, Patient
from tests.builders import form_answers, make_api_token
from tests.processes import ROOT, WorkerProcess, django_env, free_port, wait_until
from tests.test_phi_hygiene import BORN, FAMILY, GIVEN, MRN, SENTINELS

LINK = re.compile(r"https?://[^\s\"'<>]+/(c|ack)/([^/\s\"'<>]+)/")


def start_gunicorn(port: int, log: Path, env: dict) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "kyphofollow.wsgi", "-c", "gunicorn.conf.py"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/api/v1/"), timeout=90, message="gunicorn answers")
    except BaseException:
        os.killpg(process.pid, 9)
        raise
    return process


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=10).status_code > 0
    except requests.RequestException:
        return False


def mailed_link(mail_dir: Path, kind: str) -> tuple[str, str]:
    """(url, token) of the first link of `kind` ("c" or "ack") in the e-mail files the worker wrote."""
    found = []

    def look():
        found[:] = [m for f in sorted(mail_dir.glob("*")) for m in LINK.finditer(f.read_text()) if m[1] == kind]
        return bool(found)

    wait_until(look, timeout=180, message=f"an e-mail with a /{kind}/ link")
    return found[0][0], found[0][2]


def form_post(session: requests.Session, url: str, data: dict) -> requests.Response:
    page = session.get(url, timeout=30)
    token = session.cookies.get("csrftoken")
    return session.post(page.url, data={**data, "csrfmiddlewaretoken": token}, timeout=30)


def hand_out_now() -> None:
    """The sweeps above ran for moments ahead of the clock, and the worker sends a delivery only when
    its attempt is due: make what they wrote due now and hand it to the worker."""
    Delivery.objects.filter(state=DeliveryState.PENDING).update(next_attempt_at=timezone.now(), enqueued_at=None)
    sweep_deliveries(now=timezone.now())


RED_FLAG_ANSWERS = form_answers(
    **{
        "RF-01": "yes",
        "pain_now": "6",
        "pain_average_24h": "5",
        "painkillers": "none",
        "doing_physio": "no",
        "SO-2": "no",
    }
)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_no_token_mrn_name_or_birth_date_in_any_log_line(clinic, clinician, purged_broker, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    port, mail_dir = free_port(), tmp_path / "mail"
    env = django_env(EMAIL_FILE_PATH=str(mail_dir), SITE_URL=f"http://127.0.0.1:{port}", LOG_LEVEL="DEBUG")
    env.pop("EMAIL_URL", None)
    web_log, worker_log = tmp_path / "gunicorn.log", tmp_path / "worker.log"
    bearer = make_api_token(clinics=[clinic])
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {bearer}"
    base = f"http://127.0.0.1:{port}"
    gunicorn = start_gunicorn(port, web_log, env)
    worker = WorkerProcess(env=env, log_path=worker_log)
    try:
        worker.start()
        person = {"given_name": GIVEN, "family_name": FAMILY, "birth_date": BORN, "timezone": "Europe/London"}
        person |= {"email": "sentinel@example.invalid", "email_consent": True}
        patient = api.put(f"{base}/api/v1/patients/by-mrn/{MRN}/?mrn={MRN}", json=person, timeout=30).json()
        Patient.objects.filter(mrn=MRN).update(responsible_clinician=clinician)
        api.get(f"{base}/api/v1/patients/{patient['id']}/?q={FAMILY}", timeout=30)
        day = (timezone.localdate() - timedelta(days=1)).isoformat()
        procedure = {"patient": patient["id"], "kind": "kyphoplasty", "performed_on": day, "levels": [{"level": "L1"}]}
        assert api.post(f"{base}/api/v1/procedures/", json=procedure, timeout=30).status_code == 201
        api.get(f"{base}/api/v1/patients/?search={FAMILY}&birth_date={BORN}", timeout=30)

        for checkpoint in Checkpoint.objects.filter(next_reminder_at__isnull=False):  # as tests/test_phi_hygiene.py
            moment = max(checkpoint.next_reminder_at, timezone.now()).replace(hour=10)
            sweep_reminders(now=moment)
            sweep_checkins(now=moment)
        hand_out_now()
        checkin_url, checkin_token = mailed_link(mail_dir, "c")
        patient_browser = requests.Session()
        answered = form_post(patient_browser, checkin_url.replace(env["SITE_URL"], base), RED_FLAG_ANSWERS)
        assert answered.status_code == 200 and Alert.objects.exists(), answered.status_code
        sweep_escalations(now=timezone.now() + timedelta(minutes=15))
        hand_out_now()
        ack_url, ack_token = mailed_link(mail_dir, "ack")
        acked = form_post(requests.Session(), ack_url.replace(env["SITE_URL"], base), {"note": "seen"})
        assert acked.status_code == 200
        time.sleep(2)  # the last lines reach the files
    finally:
        worker.stop()
        os.killpg(gunicorn.pid, 15)
        gunicorn.wait(timeout=20)

    secrets = [checkin_token, ack_token, bearer, *SENTINELS]
    lines = [("gunicorn", line) for line in web_log.read_text().splitlines()]
    lines += [("worker", line) for line in worker_log.read_text().splitlines()]
    # This process's own log, but for urllib3: that is the test's HTTP client, standing in for a browser.
    lines += [("django", r.getMessage()) for r in caplog.records if not r.name.startswith("urllib3")]
    assert any(source == "gunicorn" and "by-mrn/" in line for source, line in lines), (
        "Django's access log (route patterns) reached gunicorn's output: the scan saw the requests"
    )
    assert any(source == "worker" and "succeeded" in line for source, line in lines)
    findings = [(source, line) for source, line in lines if any(s.lower() in line.lower() for s in secrets)]
    assert findings == []
