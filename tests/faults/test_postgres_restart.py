"""PostgreSQL stops for a few seconds under steady API writes: the API says 503 (database unavailable)
at once instead of a 500 or a hang, recovers by itself when the database is back, and leaves no
half-written record. A client that retries its 503s with the same Idempotency-Key gets each write once.

This restarts the SHARED cluster (every database on it), so it is marked `restarts_postgres` and the
faults conftest moves it to the very end of the session; the outage is kept to a few seconds.
"""

import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
import requests
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertEvent, SymptomReport
from alerts.rules import get_rules
from interop.auth import create_api_client
from patients.models import Procedure
from tests.builders import CHECKIN_DUE, PERFORMED_ON, form_answers, plan_checkin, send_invitation

pytestmark = [pytest.mark.restarts_postgres, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 4
WRITERS = 2
PAUSE = 0.1  # between a writer's requests
LEVELS = [{"level": "T12"}, {"level": "L1"}]
PHONE_ENTRY = reverse("admin:alerts_symptomreport_phone")
WORKLIST = reverse("admin:index")


def pg_ctl(action: str) -> None:
    """Stop or start the local Debian cluster the tests use (`make services` starts it the same way)."""
    assert shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir(), (
        "this test restarts the local PostgreSQL cluster with pg_ctlcluster (Debian postgresql-common), as root"
    )
    version = max((p.name for p in Path("/etc/postgresql").iterdir()), key=lambda v: [int(n) for n in v.split(".")])
    mode = ["-m", "fast"] if action == "stop" else []  # fast: end the open sessions, as a crash or failover does
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *mode],
        check=True,
        timeout=60,
        capture_output=True,
    )


@dataclass
class Call:
    kind: str
    key: str
    started: float
    elapsed: float
    status: int | None
    body: dict | str
    retry_after: str | None = None


@dataclass
class Writer:
    """Alternates a new procedure and a symptom report; a 503 is retried with the same key until it lands."""

    base: str
    token: str
    patient: int
    stop: threading.Event
    calls: list[Call] = field(default_factory=list)
    created: dict[str, dict] = field(default_factory=dict)  # Idempotency-Key -> 201 body and its endpoint

    def run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        turn = 0
        while not self.stop.is_set():
            kind = ("procedures", "symptom-reports")[turn % 2]
            turn += 1
            body = (
                {
                    "patient": self.patient,
                    "kind": "kyphoplasty",
                    "performed_on": (timezone.localdate() - timedelta(days=1)).isoformat(),
                    "fracture_diagnosed_on": (timezone.localdate() - timedelta(days=5)).isoformat(),
                    "levels": LEVELS,
                }
                if kind == "procedures"
                else {"patient": self.patient, "pain_now": 6, "red_flags": ["RF-05"]}
            )
            key = str(uuid.uuid4())
            for _ in range(200):  # the same logical write until it is stored
                started = time.monotonic()
                try:
                    response = session.post(
                        f"{self.base}/{kind}/", json=body, headers={"Idempotency-Key": key}, timeout=15
                    )
                except requests.RequestException as exc:
                    self.calls.append(Call(kind, key, started, time.monotonic() - started, None, repr(exc)))
                    time.sleep(PAUSE)
                    continue
                try:
                    payload = response.json()
                except ValueError:
                    payload = response.text[:300]
                self.calls.append(
                    Call(
                        kind,
                        key,
                        started,
                        time.monotonic() - started,
                        response.status_code,
                        payload,
                        response.headers.get("Retry-After"),
                    )
                )
                time.sleep(PAUSE)
                if response.status_code == 201:
                    self.created[key] = {**payload, "endpoint": kind}
                    break
                if response.status_code != 503:
                    break


def test_api_answers_503_while_postgres_restarts_then_recovers_with_nothing_half_written(
    live_server, clinic, make_patient, make_procedure
):
    patient = make_procedure(patient=make_patient()).patient
    _, token = create_api_client(name="EHR", clinics=[clinic], scopes=["read", "write"])
    stop = threading.Event()
    writers = [Writer(live_server.url + "/api/v1", token, patient.pk, stop) for _ in range(WRITERS)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
    for thread in threads:
        thread.start()

    try:
        time.sleep(1.5)
        try:
            pg_ctl("stop")  # returns once the server is down
            down_at = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
        finally:
            starting_at = time.monotonic()
            pg_ctl("start")  # returns once it accepts connections again (often a little after)
        up_at = time.monotonic()
        time.sleep(4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    connection.close()  # this thread's connection died with the server; the next query reconnects

    calls = sorted((c for w in writers for c in w.calls), key=lambda c: c.started)
    created = {key: value for w in writers for key, value in w.created.items()}
    statuses = {c.status for c in calls}
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert statuses <= {201, 503}, [(c.status, c.body) for c in calls if c.status not in (201, 503)][:5]
    unavailable = [c for c in calls if c.status == 503]
    assert unavailable, "no request met the outage"
    assert all("database" in str(c.body.get("detail", "")) for c in unavailable), unavailable[0].body
    assert all(c.retry_after for c in unavailable)
    assert max(c.elapsed for c in calls) < 10, "a request hung while the database was away"
    during = [c for c in calls if c.started > down_at and c.started + c.elapsed < starting_at]
    assert during and {c.status for c in during} == {503}, "a write was answered 201 with the database down"
    recovered = [c for c in calls if c.started >= starting_at and c.status == 201]
    assert recovered and recovered[0].started < up_at + 3, "the API did not recover by itself within 3 s"
    # Every logical write was stored (its 503s retried with the same key) and nothing is half-written.
    assert {c.key for c in calls} == set(created)
    procedures = [v["id"] for v in created.values() if v["endpoint"] == "procedures"]
    reports = [v["id"] for v in created.values() if v["endpoint"] == "symptom-reports"]
    assert Procedure.objects.filter(patient=patient).count() == len(procedures) + 1
    for procedure in Procedure.objects.filter(pk__in=procedures).prefetch_related("levels"):
        assert sorted(level.level for level in procedure.levels.all()) == ["L1", "T12"]
    assert not Procedure.objects.filter(levels__isnull=True).exists(), "a procedure without its levels"
    assert not Procedure.objects.filter(checkpoints__isnull=True).exists(), "a procedure without its schedule"
    assert SymptomReport.objects.filter(patient=patient).count() == len(reports)
    alert = Alert.objects.get(patient=patient, code="RF-05")
    assert alert.count == len(reports)
    for report in SymptomReport.objects.filter(pk__in=reports):
        assert report.findings, f"report {report.pk} without its findings"
        assert report.pk == alert.first_report_id or AlertEvent.objects.filter(
            alert=alert, kind=AlertEvent.Kind.REPEATED, data__report=report.pk
        ), f"report {report.pk} without its alert"
    print(
        f"{len(calls)} calls, {len(unavailable)} answered 503 (slowest {max(c.elapsed for c in unavailable):.2f} s); "
        f"{len(procedures)} procedures and {len(reports)} reports stored; "
        f"first 201 {recovered[0].started - starting_at:.2f} s after the restart began"
    )


@pytest.mark.hazard("HAZ-60")
def test_pages_answer_503_in_words_while_postgres_is_down_and_an_unsent_red_flag_tells_the_patient_what_to_do(
    clinic, coordinator, clinician, make_patient, make_procedure, monkeypatch
):
    """The check-in form, the phone entry and the staff worklist during a real outage: a 503 page (not a
    500), nothing saved, and a patient whose unsent answers hold an emergency red flag is told to call
    emergency services on that page. When the database is back the same answers are saved and paged."""
    procedure = make_procedure(
        patient=make_patient(responsible_clinician=clinician),
        performed_on=PERFORMED_ON,
        fracture_diagnosed_on=PERFORMED_ON - timedelta(days=8),
    )
    # psycopg measures its connect timeout on a clock the travel below moves: connect without one here
    # (a stopped server refuses at once; the outage is seconds long).
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "connect_timeout", 0)
    with time_machine.travel(CHECKIN_DUE, tick=True):
        invitation = send_invitation(checkin=plan_checkin(procedure=procedure))
        patient = Client(raise_request_exception=False)
        assert patient.get(invitation.path).status_code == 302
        assert patient.get("/checkin/").status_code == 200
        staff = Client(raise_request_exception=False)
        staff.force_login(coordinator)
        answers = form_answers(**{"RF-01": "yes"})
        try:
            pg_ctl("stop")
            unsent = in_thread(lambda: patient.post("/checkin/", answers))
            unsent_urgent = in_thread(lambda: patient.post("/checkin/", {"RF-06": "yes"}))
            phone = in_thread(lambda: staff.post(PHONE_ENTRY, {"procedure": str(procedure.pk), "RF-01": "yes"}))
            worklist = in_thread(lambda: staff.get(WORKLIST))
        finally:
            pg_ctl("start")
        connection.close()  # this thread's connection died with the server; the next query reconnects

        assert [r.status_code for r in (unsent, unsent_urgent, phone, worklist)] == [503] * 4
        assert all(r["Retry-After"] and r["Cache-Control"] == "no-store" for r in (unsent, phone, worklist))
        page = visible_text(unsent)
        assert get_rules("2026.1").wording["emergency_no_number"] in page
        assert "your clinician has not been told" in page
        assert "Your clinician has not been told" in visible_text(unsent_urgent)
        assert "Nothing from this request was saved" in visible_text(phone)

        for _ in range(100):  # until the restarted server accepts connections
            saved = in_thread(lambda: patient.post("/checkin/", answers))
            if saved.status_code != 503:
                break
            time.sleep(0.2)
        assert saved.status_code == 302, saved.status_code
    # One report: the one sent once the database was back; the three refused during the outage left nothing.
    [report] = SymptomReport.objects.all()
    assert report.red_flags == ["RF-01"]
    assert Alert.objects.get(patient=procedure.patient, code="RF-01").tier == "emergency"


def in_thread(call):
    """`call()` in a thread of its own, as a server runs a request: with a database connection of its
    own, closed when it ends (a broken one is never reused, as the server's end-of-request check does)."""
    result = []

    def run():
        try:
            result.append(call())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert result, "the request hung or raised"
    return result[0]


def visible_text(response) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))
