"""Benchmark: `POST /api/v1/symptom-reports/` throughput under gunicorn, against a one-INSERT DRF endpoint.

Set-up (not timed): a throw-away PostgreSQL database (bench/_common.py), one clinic, one clinician
(every patient's responsible clinician, so an alert writes one e-mail Delivery), PATIENTS active
patients each with one kyphoplasty 5 days ago (record_procedure: levels, risk, schedule) and one
API client (read + write) for the clinic.

Server: one gunicorn (`bench.baseline_app:application`: the real app, plus the baseline endpoint
`POST /api/v1/bench-insert/`, see bench/baseline_app.py), `--workers 2 --threads 1` (sync workers,
so one request per connection), DEBUG off, DATABASE_CONN_MAX_AGE=60, Redis db 10 of the REDIS_URL
server as cache (throttle) and broker (tasks on a queue of their own, purged at the end), access
log at INFO to a file. API_THROTTLE_RATE is 1000000/s: never reached, and the throttle's per-client
history stays about one second of requests long (at 1000000/min it would hold a minute's, tens of
thousands of timestamps re-pickled on every request, which is not what production pays at 1200/min).

Load: CONNECTIONS threads, each with its own http.client connection (re-opened after every response,
gunicorn's sync worker does not keep connections alive), sending back to back for a fixed time;
only 201s are counted, anything else is reported on stderr. Reports: a random patient of the
PATIENTS; 90% without red flags, 10% with one urgent red flag (RF-05/RF-06/RF-08/RF-10; the first
raises an alert with its Delivery and on-commit task, later ones count a repeat); pain_now is the
patient's own level or one below, so the pain-trend rule (RF-07) does not fire. Baseline: the same
headers, a small JSON body.

Order: WARMUP seconds of each, then (baseline, reports, reports, baseline) twice, PHASE seconds each,
so both see the same background load; rates are 201s over the summed phase time of each endpoint.

Prints, on stdout, one line each:
BENCH api_throughput_ratio <reports / baseline> ratio   (target >= 0.4)
BENCH api_throughput_reports_rps <201s per second> req/s
BENCH api_throughput_baseline_rps <201s per second> req/s

On stderr, the CPU time per 201 of the gunicorn workers, the bench database's PostgreSQL backends and
this process (the load generator), read from /proc: on a busy machine the rates move with other load,
while the ratio of CPU per request is steadier and, the run being CPU-bound, predicts the throughput
ratio.
"""

import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, bench, bench_database, note, setup_django, write_artifact  # noqa: E402

PATIENTS = 200
CONNECTIONS = 8
WARMUP = 3.0  # seconds per endpoint, not counted
PHASE = 5.0  # seconds per phase; each endpoint gets len(ORDER) / 2 phases
ORDER = ("baseline", "reports", "reports", "baseline") * 2  # interleaved against drifting machine load
WORKERS = 2
REDIS_DB = 10
QUEUE = "kyphofollow-bench-api"
THROTTLE_RATE = "1000000/s"
REPORTS_PATH = "/api/v1/symptom-reports/"
BASELINE_PATH = "/api/v1/bench-insert/"
FLAGGED = ("RF-05", "RF-06", "RF-08", "RF-10")
FLAGGED_SHARE = 0.10
TARGET = 0.4


def redis_url_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


# --- Set-up -------------------------------------------------------------------------------------


def make_fixtures() -> tuple[str, list[tuple[int, int, int]]]:
    """(raw bearer token, [(patient id, procedure id, usual pain)])."""
    from django.utils import timezone

    from patients.models import StaffRole
    from tests.builders import birth_date_for_age, make_api_token, make_clinic, make_patient, make_procedure, make_staff

    clinic = make_clinic(name="Bench Spine", slug="bench", phone="+44 20 0000 0000", email="s@bench.invalid")
    clinician = make_staff(username="bench_clinician", clinic=clinic, role=StaffRole.CLINICIAN, password=None)
    today = timezone.localdate()
    rows, rng = [], random.Random(7)
    for n in range(PATIENTS):
        patient = make_patient(
            clinic=clinic,
            number=n,
            mrn=f"API{n:05d}",
            birth_date=birth_date_for_age(65 + n % 25),
            responsible_clinician=clinician,
        )
        procedure = make_procedure(
            patient=patient,
            performed_on=today - timedelta(days=5),
            fracture_diagnosed_on=today - timedelta(days=15),
        )
        rows.append((patient.pk, procedure.pk, rng.randint(2, 6)))
    token = make_api_token(clinics=[clinic], name="Bench EHR")
    return token, rows


# --- Server -------------------------------------------------------------------------------------


def start_server(port: int, redis_url: str, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ)  # bench_database() has put DATABASE_URL, DEBUG=false, ... here
    env.update(
        REDIS_URL=redis_url,
        DATABASE_CONN_MAX_AGE="60",
        API_THROTTLE_RATE=THROTTLE_RATE,
        BENCH_CELERY_QUEUE=QUEUE,
        LOG_LEVEL="INFO",
    )
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "bench.baseline_app:application",
        "--workers",
        str(WORKERS),
        "--threads",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.log_file = log
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            process.log_file.close()
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", BASELINE_PATH)  # 401/405: the app is loaded and answering
            conn.getresponse().read()
            conn.close()
            return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"gunicorn did not answer within 30 s; see {log_path}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.log_file.close()


# --- CPU accounting (context on stderr: CPU time per request is less sensitive to other load) -----


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def child_pids(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving the bench database (the server runs on this host)."""
    import psycopg
    from _common import _conninfo, _with_database

    name = urlsplit(database_url).path[1:]
    with psycopg.connect(_conninfo(_with_database(database_url, "postgres")), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
    return [pid for (pid,) in rows]


def cpu_sample(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds per process of each group, and of this process ("client", pid 0); a process that is gone
    is left out (a PostgreSQL backend closed in a phase would otherwise count as negative time)."""
    sample = {
        name: {pid: cpu_seconds(pid) for pid in pids if os.path.exists(f"/proc/{pid}")} for name, pids in groups.items()
    }
    sample["client"] = {0: time.process_time()}
    return sample


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per group between two samples, over the processes present in both."""
    return {
        name: sum(after[name][pid] - seconds for pid, seconds in pids.items() if pid in after[name])
        for name, pids in before.items()
    }


# --- Load ---------------------------------------------------------------------------------------


class Load:
    """CONNECTIONS threads posting to one path for `seconds`; counts 201s and everything else.
    `make_body(rng)` returns the JSON body, or (body, extra headers) for headers that vary per request."""

    def __init__(self, port: int, token: str, path: str, make_body, seconds: float, content_type="application/json"):
        self.port, self.path, self.make_body, self.seconds = port, path, make_body, seconds
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        self.created = 0
        self.errors: dict[str, int] = {}
        self.lock = threading.Lock()

    def _worker(self, seed: int, start: threading.Barrier) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        created, errors = 0, {}
        start.wait()
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            made = self.make_body(rng)
            body, extra = made if isinstance(made, tuple) else (made, {})
            try:
                conn.request("POST", self.path, body=json.dumps(body), headers={**self.headers, **extra})
                response = conn.getresponse()
                payload = response.read()
                if response.status == 201:
                    created += 1
                else:
                    key = f"{response.status} {payload[:200].decode(errors='replace')}"
                    errors[key] = errors.get(key, 0) + 1
            except (OSError, http.client.HTTPException) as exc:
                key = f"{type(exc).__name__}: {exc}"
                errors[key] = errors.get(key, 0) + 1
                conn.close()
        conn.close()
        with self.lock:
            self.created += created
            for key, count in errors.items():
                self.errors[key] = self.errors.get(key, 0) + count

    def run(self) -> "Load":
        start = threading.Barrier(CONNECTIONS + 1)
        threads = [threading.Thread(target=self._worker, args=(seed, start)) for seed in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.monotonic()
        for thread in threads:
            thread.join()
        self.elapsed = time.monotonic() - began
        return self


def report_body_maker(rows):
    def make(rng: random.Random) -> dict:
        patient, procedure, pain = rng.choice(rows)
        now = rng.choice((pain, pain - 1))
        body = {"patient": patient, "procedure": procedure, "pain_now": now, "pain_average_24h": pain}
        body["red_flags"] = [rng.choice(FLAGGED)] if rng.random() < FLAGGED_SHARE else []
        return body

    return make


def baseline_body(rng: random.Random) -> dict:
    return {"note": "bench", "n": rng.randint(0, 1_000_000)}


# --- Measurement (shared with bench_fhir_create.py) ----------------------------------------------


def run_phases(server, database_url: str, port: int, token: str, endpoints: dict, order) -> tuple:
    """WARMUP seconds of each endpoint ({name: (path, make_body[, content type])}), then one PHASE of load per
    name in `order`. Returns (201s, seconds, CPU seconds per process group, non-201 answers), each per name."""
    for name, (path, make, *media) in endpoints.items():
        warm = Load(port, token, path, make, WARMUP, *media).run()
        if warm.errors:
            note(f"warm-up {name}: errors {warm.errors}")
    created = dict.fromkeys(endpoints, 0)
    elapsed = dict.fromkeys(endpoints, 0.0)
    cpu = {name: dict.fromkeys(["gunicorn", "postgres", "client"], 0.0) for name in endpoints}
    errors: dict[str, dict[str, int]] = {name: {} for name in endpoints}
    for name in order:
        path, make, *media = endpoints[name]
        groups = {"gunicorn": child_pids(server.pid), "postgres": backend_pids(database_url)}
        before = cpu_sample(groups)
        load = Load(port, token, path, make, PHASE, *media).run()
        for group, seconds in cpu_used(before, cpu_sample(groups)).items():
            cpu[name][group] += seconds
        created[name] += load.created
        elapsed[name] += load.elapsed
        for key, count in load.errors.items():
            errors[name][key] = errors[name].get(key, 0) + count
        note(f"{name}: {load.created} x 201 in {load.elapsed:.1f} s ({load.created / load.elapsed:.0f}/s)")
    return created, elapsed, cpu, errors


def cpu_notes(created: dict, cpu: dict, errors: dict) -> None:
    """CPU ms per 201 of each process group, and the non-201 answers, on stderr."""
    for name in created:
        per = {group: 1000 * seconds / max(created[name], 1) for group, seconds in cpu[name].items()}
        note(
            f"{name}: CPU ms per 201: "
            + ", ".join(f"{group} {ms:.2f}" for group, ms in per.items())
            + f", total {sum(per.values()):.2f}"
        )
    for name in created:
        if errors[name]:
            note(f"{name}: non-201 responses: {errors[name]}")


# --- Main ---------------------------------------------------------------------------------------


def purge_bench_queue(redis_url: str) -> int:
    from kombu import Connection

    with Connection(redis_url) as conn:
        return conn.default_channel.queue_purge(QUEUE) or 0


def main() -> None:
    base_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    redis_url = redis_url_db(base_redis, REDIS_DB)
    with bench_database("api") as database_url:
        setup_django()
        note(f"database {urlsplit(database_url).path[1:]}; creating {PATIENTS} patients with procedures")
        token, rows = make_fixtures()
        from django.db import connections

        connections.close_all()
        from tests.processes import free_port

        port = free_port()
        with tempfile.TemporaryDirectory(prefix="kf-bench-api-") as tmp:
            log_path = Path(tmp) / "gunicorn.log"
            server = start_server(port, redis_url, log_path)
            try:
                reports = report_body_maker(rows)
                endpoints = {"baseline": (BASELINE_PATH, baseline_body), "reports": (REPORTS_PATH, reports)}
                created, elapsed, cpu, errors = run_phases(server, database_url, port, token, endpoints, ORDER)
            finally:
                stop_server(server)
                server_log = log_path.read_text(errors="replace")
            problems = [line for line in server_log.splitlines() if "ERROR" in line or "Traceback" in line]
            if problems:
                note(f"gunicorn log: {len(problems)} error line(s), first: {problems[0][:300]}")
        cpu_notes(created, cpu, errors)

        from alerts.models import Alert, Delivery, SymptomReport

        note(
            f"written: {SymptomReport.objects.count()} reports, {Alert.objects.count()} alerts, "
            f"{Delivery.objects.count()} deliveries"
        )
        purged = purge_bench_queue(redis_url)
        note(f"purged {purged} task(s) from queue {QUEUE} on {redis_url}")

    reports_rps = created["reports"] / elapsed["reports"]
    baseline_rps = created["baseline"] / elapsed["baseline"]
    ratio = reports_rps / baseline_rps if baseline_rps else 0.0
    bench("api_throughput_ratio", round(ratio, 3), "ratio")
    bench("api_throughput_reports_rps", int(round(reports_rps)), "req/s")
    bench("api_throughput_baseline_rps", int(round(baseline_rps)), "req/s")
    note(
        f"target: ratio >= {TARGET} -> {'met' if ratio >= TARGET else 'NOT met'} "
        f"({CONNECTIONS} connections, gunicorn {WORKERS} sync workers, {len(ORDER) / 2 * PHASE:.0f} s per endpoint)"
    )
    write_artifact("bench_api_throughput.txt")


if __name__ == "__main__":
    main()
