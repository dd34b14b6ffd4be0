"""Benchmark: conditional `POST /fhir/Procedure` (If-None-Exist) against `POST /api/v1/procedures/`, same server,
same run.

Both record a new procedure through `record_procedure` (levels, risk assessment, schedule of checkpoints); the
FHIR one also parses and validates the resource with the R4B models on the way in and out, runs the
If-None-Exist search, counts the version and builds `Location`. The ratio is what the FHIR facade costs over the
JSON API for the same fact.

Set-up (not timed): a throw-away PostgreSQL database (bench/_common.py), one clinic, PATIENTS active patients
without procedures and one API client (read + write). Server, load, CPU accounting and phase order: as in
bench_api_throughput.py (gunicorn `bench.baseline_app:application`, 2 sync workers, CONNECTIONS connections,
(api, fhir, fhir, api) twice after a warm-up, only 201s counted).

Every request of either endpoint is a new procedure: a shared counter gives each one its own (patient, date)
pair, so the If-None-Exist search (`patient=<id>&date=<day>&code=kyphoplasty`) never matches and every answer is a
201 (a 200 would mean a match; it is reported on stderr and not counted). Two levels, a fracture date ten days
before, a baseline pain, as an EHR sends them.

Prints, on stdout, one line each:
BENCH fhir_create_ratio <fhir / api> ratio   (target >= 0.7)
BENCH fhir_create_fhir_rps <201s per second> req/s
BENCH fhir_create_api_rps <201s per second> req/s
"""

import itertools
import os
import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench, bench_database, note, setup_django, write_artifact  # noqa: E402
from bench_api_throughput import (  # noqa: E402
    CONNECTIONS,
    PHASE,
    QUEUE,
    REDIS_DB,
    WORKERS,
    cpu_notes,
    purge_bench_queue,
    redis_url_db,
    run_phases,
    start_server,
    stop_server,
)

PATIENTS = 300
ORDER = ("api", "fhir", "fhir", "api") * 2  # interleaved against drifting machine load
API_PATH = "/api/v1/procedures/"
FHIR_PATH = "/fhir/Procedure"
FHIR_JSON = "application/fhir+json"
LEVELS = ("T12", "L1")
TARGET = 0.7


def make_fixtures() -> tuple[str, list[int]]:
    """(raw bearer token, patient ids)."""
    from tests.builders import birth_date_for_age, make_api_token, make_clinic, make_patient

    clinic = make_clinic(name="Bench Spine", slug="bench", phone="+44 20 0000 0000", email="s@bench.invalid")
    patients = [
        make_patient(clinic=clinic, number=n, mrn=f"FHC{n:05d}", birth_date=birth_date_for_age(65 + n % 25)).pk
        for n in range(PATIENTS)
    ]
    return make_api_token(clinics=[clinic], name="Bench EHR"), patients


class Slots:
    """A new (patient, performed date) for every request of either endpoint, across threads."""

    def __init__(self, patients: list[int]):
        from django.utils import timezone

        self.patients, self.today = patients, timezone.localdate()
        self.counter, self.lock = itertools.count(), threading.Lock()

    def take(self):
        with self.lock:
            n = next(self.counter)
        performed = self.today - timedelta(days=1 + n // len(self.patients))
        return self.patients[n % len(self.patients)], performed


def api_body_maker(slots: Slots):
    def make(rng) -> dict:
        patient, performed = slots.take()
        return {
            "patient": patient,
            "kind": "kyphoplasty",
            "performed_on": performed.isoformat(),
            "fracture_diagnosed_on": (performed - timedelta(days=10)).isoformat(),
            "baseline_pain": rng.randint(5, 9),
            "levels": [{"level": level} for level in LEVELS],
        }

    return make


def fhir_body_maker(slots: Slots):
    from interop.fhir.codes import EXT_BASELINE_PAIN, EXT_FRACTURE_DIAGNOSED, SYSTEM_PROCEDURE_KIND, SYSTEM_VERTEBRA

    def make(rng) -> tuple[dict, dict]:
        patient, performed = slots.take()
        body = {
            "resourceType": "Procedure",
            "extension": [
                {"url": EXT_FRACTURE_DIAGNOSED, "valueDate": (performed - timedelta(days=10)).isoformat()},
                {"url": EXT_BASELINE_PAIN, "valueInteger": rng.randint(5, 9)},
            ],
            "status": "completed",
            "code": {"coding": [{"system": SYSTEM_PROCEDURE_KIND, "code": "kyphoplasty"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "performedDateTime": performed.isoformat(),
            "bodySite": [{"coding": [{"system": SYSTEM_VERTEBRA, "code": level}]} for level in LEVELS],
        }
        search = f"patient={patient}&date={performed.isoformat()}&code=kyphoplasty"
        return body, {"If-None-Exist": search, "Accept": FHIR_JSON}

    return make


def main() -> None:
    redis_url = redis_url_db(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"), REDIS_DB)
    with bench_database("fhircreate") as database_url:
        setup_django()
        note(f"database {urlsplit(database_url).path[1:]}; creating {PATIENTS} patients")
        token, patients = make_fixtures()
        from django.db import connections

        connections.close_all()
        from tests.processes import free_port

        port = free_port()
        slots = Slots(patients)
        endpoints = {
            "api": (API_PATH, api_body_maker(slots)),
            "fhir": (FHIR_PATH, fhir_body_maker(slots), FHIR_JSON),
        }
        with tempfile.TemporaryDirectory(prefix="kf-bench-fhir-") as tmp:
            log_path = Path(tmp) / "gunicorn.log"
            server = start_server(port, redis_url, log_path)
            try:
                created, elapsed, cpu, errors = run_phases(server, database_url, port, token, endpoints, ORDER)
            finally:
                stop_server(server)
            problems = [line for line in log_path.read_text(errors="replace").splitlines() if "Traceback" in line]
            if problems:
                note(f"gunicorn log: {len(problems)} traceback(s)")
        cpu_notes(created, cpu, errors)
        from patients.models import Checkpoint, Procedure

        note(f"written: {Procedure.objects.count()} procedures, {Checkpoint.objects.count()} checkpoints")
        note(f"purged {purge_bench_queue(redis_url)} task(s) from queue {QUEUE} on {redis_url}")

    fhir_rps = created["fhir"] / elapsed["fhir"]
    api_rps = created["api"] / elapsed["api"]
    ratio = fhir_rps / api_rps if api_rps else 0.0
    bench("fhir_create_ratio", round(ratio, 3), "ratio")
    bench("fhir_create_fhir_rps", round(fhir_rps, 1), "req/s")
    bench("fhir_create_api_rps", round(api_rps, 1), "req/s")
    note(
        f"target: ratio >= {TARGET} -> {'met' if ratio >= TARGET else 'NOT met'} "
        f"({CONNECTIONS} connections, gunicorn {WORKERS} sync workers, {len(ORDER) / 2 * PHASE:.0f} s per endpoint)"
    )
    write_artifact("bench_fhir_create.txt")


if __name__ == "__main__":
    main()
