"""Benchmark: red-flag report committed -> clinician's page arriving at an SMTP server, vs a bare task.

Set-up (not timed): a throw-away PostgreSQL database (bench/_common.py), one clinic, one clinician
(set as every patient's responsible clinician) and 1,000 (+ warm-up) active patients, each with one
kyphoplasty 5 days ago. A local SMTP server (tests.processes.SMTPServer, run in a child process so
that its receive loop never waits for this process's GIL) and one `celery -A kyphofollow worker`
(tests.processes.WorkerProcess's command, prefork, concurrency 2, plus `-Q <own queue>` and
`--include bench.bench_alert_latency` for the floor task; `bench` is imported as a namespace
package, no bench/__init__.py) on a Redis database of its own (db 13 of the REDIS_URL server).

Floor: `floor_email_task.delay_on_commit(n)` inside `transaction.atomic()`; the task sends one fixed
plain-text e-mail (header X-Bench-Floor: n) with django.core.mail. Latency = arrival at the SMTP
server minus the instant the atomic block has committed (and published).

Alerts: `alerts.reports.submit_report(..., red_flags=["RF-01"])`, called outside any atomic block,
one per patient (each raises a new EMERGENCY alert and one ALERT Delivery to the clinician). Latency
= arrival of the page (matched by X-Kyphofollow-Delivery -> Delivery.alert.first_report) minus the
instant `submit_report` returned (its transaction has committed and its on-commit task is published).

Both: same worker, same rate (RATE per second on a fixed schedule), WARMUP untimed sends each, then
COUNT timed sends each, in alternating blocks of BLOCK (floor, alerts, alerts, floor, ...; each block
drained before the next) so that both see the same background load on a shared machine. Prints the
median and p99 of each and the alert/floor ratios (targets: p50 <= 2, p99 <= 4); on stderr, the
worker-side run time of each task (from the worker log) to split the latency into task vs the rest.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from celery import shared_task

COUNT = 1_000
WARMUP = 50
BLOCK = 100  # sends per block; floor and alert blocks alternate
RATE = 20.0  # sends per second, both phases
ARRIVAL_TIMEOUT = 60.0  # seconds to wait for the last arrivals after the last send
QUEUE = "kyphofollow-bench-latency"
REDIS_DB = 13
FLOOR_TO = "floor@bench.invalid"
FLOOR_SUBJECT = "kyphofollow bench floor"
FLOOR_BODY = "A fixed plain-text message for the latency floor.\n"


@shared_task(name="bench.alert_latency.floor_email_task")
def floor_email_task(n: int) -> None:
    """The floor: one fixed plain-text e-mail, no database."""
    from django.conf import settings
    from django.core.mail import EmailMessage

    EmailMessage(
        FLOOR_SUBJECT, FLOOR_BODY, settings.DEFAULT_FROM_EMAIL, [FLOOR_TO], headers={"X-Bench-Floor": str(n)}
    ).send()


# --- SMTP server in a child process -------------------------------------------------------------


def _smtp_child(conn, root: str) -> None:
    sys.path.insert(0, root)
    from tests.processes import SMTPServer

    server = SMTPServer().start()
    conn.send(server.port)
    while True:
        command = conn.recv()
        if command == "count":
            conn.send(len(server.recorder.messages))
        elif command == "dump":
            with server.recorder.lock:
                rows = [
                    (message.get("X-Bench-Floor"), message.get("X-Kyphofollow-Delivery"), at)
                    for message, at in zip(server.recorder.messages, server.recorder.arrival_times, strict=True)
                ]
            conn.send(rows)
        elif command == "stop":
            server.stop()
            conn.send("stopped")
            return


class SMTPChild:
    def __init__(self, root: Path):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_smtp_child, args=(child_conn, str(root)), daemon=True)

    def start(self) -> "SMTPChild":
        self.process.start()
        self.port = self.conn.recv()
        self.url = f"smtp://127.0.0.1:{self.port}"
        return self

    def ask(self, command: str):
        self.conn.send(command)
        return self.conn.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.ask("stop")
            finally:
                self.process.join(timeout=10)
                if self.process.is_alive():
                    self.process.kill()


# --- Worker -------------------------------------------------------------------------------------


def start_worker(email_url: str, log_path: Path):
    from tests.processes import WorkerProcess

    return WorkerProcess(
        concurrency=2,
        env={"EMAIL_URL": email_url},
        log_path=log_path,
        extra_args=("-Q", QUEUE, "--include", "bench.bench_alert_latency"),
    ).start()


def purge_own_queue() -> int:
    from kyphofollow.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(QUEUE) or 0


# --- Set-up -------------------------------------------------------------------------------------


def make_population(count: int):
    """One clinic, one clinician, `count` patients with one procedure each; returns the procedures."""
    from datetime import timedelta

    from django.utils import timezone

    from patients.models import Procedure, StaffRole
    from tests.builders import bulk_patients, bulk_procedures, make_clinic, make_staff

    clinic = make_clinic(
        name="Bench Spine", slug="bench-latency", phone="+44 20 0000 0000", email="spine@bench.invalid"
    )
    clinician = make_staff(username="dr_bench", clinic=clinic, role=StaffRole.CLINICIAN, password=None)
    today = timezone.localdate()
    patients = bulk_patients(clinic=clinic, count=count, first=0, mrn_prefix="L", responsible_clinician=clinician)
    procedures = bulk_procedures(
        patients=patients, performed_on=today - timedelta(days=5), fracture_diagnosed_on=today - timedelta(days=15)
    )
    ids = [procedure.pk for procedure in procedures]
    return list(Procedure.objects.select_related("patient__clinic").filter(pk__in=ids).order_by("pk"))


# --- Phases -------------------------------------------------------------------------------------


def paced(items, rate: float):
    """Yield each item at its slot of a fixed schedule (never bunching up to catch up)."""
    interval = 1.0 / rate
    next_slot = time.perf_counter()
    for item in items:
        delay = next_slot - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield item
        next_slot = max(next_slot + interval, time.perf_counter())


def send_floor(numbers) -> tuple[dict[int, float], float]:
    """Returns {n: commit instant} and the achieved rate."""
    from django.db import transaction

    sent, start = {}, time.perf_counter()
    for n in paced(numbers, RATE):
        with transaction.atomic():
            floor_email_task.delay_on_commit(n)
        sent[n] = time.time()
    return sent, len(sent) / (time.perf_counter() - start)


def send_reports(procedures) -> tuple[dict[int, float], float, list[float]]:
    """Returns {report id: instant submit_report returned}, the achieved rate and the call durations."""
    from alerts.reports import submit_report

    sent, durations, start = {}, [], time.perf_counter()
    for procedure in paced(procedures, RATE):
        began = time.perf_counter()
        report = submit_report(procedure=procedure, source="api", pain_now=3, red_flags=["RF-01"])
        sent[report.pk] = time.time()
        durations.append(time.perf_counter() - began)
    return sent, len(sent) / (time.perf_counter() - start), durations


def wait_for(smtp: SMTPChild, total: int) -> int:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while time.monotonic() < deadline:
        received = smtp.ask("count")
        if received >= total:
            return received
        time.sleep(0.2)
    return smtp.ask("count")


def task_run_times(log_path: Path) -> dict[str, list[float]]:
    """Worker-reported run time (s) of each task, by task name, from `Task x[id] succeeded in Ns`."""
    import re

    times: dict[str, list[float]] = {}
    pattern = r"Task ([\w.]+)\[[^\]]+\] succeeded in ([0-9.e-]+)s"
    for match in re.finditer(pattern, log_path.read_text(errors="replace")):
        times.setdefault(match.group(1), []).append(float(match.group(2)))
    return times


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    import math

    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def main() -> None:
    import statistics
    from urllib.parse import urlsplit, urlunsplit

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import ROOT, bench, bench_database, note, setup_django, write_artifact

    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    os.environ["REDIS_URL"] = urlunsplit((parts.scheme, parts.netloc, f"/{REDIS_DB}", "", ""))
    with bench_database("latency"):
        setup_django()
        from django.db import connection

        from kyphofollow.celery import app

        app.conf.task_default_queue = QUEUE
        purge_own_queue()

        started = time.monotonic()
        procedures = make_population(WARMUP + COUNT)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        note(f"set-up: {len(procedures)} patients and procedures in {time.monotonic() - started:.1f} s")

        smtp = SMTPChild(ROOT).start()
        log_path = Path(tempfile.gettempdir()) / f"kyphofollow-bench-latency-worker-{os.getpid()}.log"
        note(f"worker log: {log_path}")
        worker = start_worker(smtp.url, log_path)
        try:
            expected = 0
            # Warm-up: worker start (the first floor task waits for it), template and connection caches.
            send_floor(range(-WARMUP, 0))
            expected += WARMUP
            wait_for(smtp, expected)
            send_reports(procedures[:WARMUP])
            expected += WARMUP
            wait_for(smtp, expected)

            floor_sent, alert_sent, durations, rates = {}, {}, [], {"floor": [], "alert": []}
            timed = procedures[WARMUP:]
            for block in range(0, COUNT, BLOCK):
                order = ("floor", "alert") if (block // BLOCK) % 2 == 0 else ("alert", "floor")
                for kind in order:
                    if kind == "floor":
                        sent, rate = send_floor(range(block, min(block + BLOCK, COUNT)))
                        floor_sent.update(sent)
                    else:
                        sent, rate, took = send_reports(timed[block : block + BLOCK])
                        alert_sent.update(sent)
                        durations += took
                    rates[kind].append(rate)
                    expected += len(sent)
                    wait_for(smtp, expected)
            received = smtp.ask("count")
            note(f"{received} of {expected} messages arrived (warm-up included)")
            rows = smtp.ask("dump")
        finally:
            worker.stop()
            smtp.stop()
            purge_own_queue()

        from alerts.models import Delivery

        floor_ms = [1000 * (at - floor_sent[int(n)]) for n, _, at in rows if n is not None and int(n) in floor_sent]
        by_delivery = {int(d): at for _, d, at in rows if d is not None}
        report_of = dict(Delivery.objects.filter(pk__in=list(by_delivery)).values_list("pk", "alert__first_report_id"))
        alert_ms = [
            1000 * (at - alert_sent[report_of[d]]) for d, at in by_delivery.items() if report_of.get(d) in alert_sent
        ]
        note(f"floor: {len(floor_ms)}/{COUNT} arrived; alerts: {len(alert_ms)}/{COUNT} arrived")
        note(
            f"achieved rate per block: floor {min(rates['floor']):.1f}-{max(rates['floor']):.1f}/s, "
            f"alerts {min(rates['alert']):.1f}-{max(rates['alert']):.1f}/s (target {RATE:g}/s)"
        )
        for name, runs in sorted(task_run_times(log_path).items()):
            note(
                f"worker run time of {name} (warm-up included): median {1000 * statistics.median(runs):.1f} ms, "
                f"p99 {1000 * percentile(runs, 99):.1f} ms, n={len(runs)}"
            )
        note(
            f"submit_report took median {1000 * statistics.median(durations):.1f} ms, "
            f"p99 {1000 * percentile(durations, 99):.1f} ms (in the caller, not part of the latency)"
        )
        floor_p50, floor_p99 = statistics.median(floor_ms), percentile(floor_ms, 99)
        alert_p50, alert_p99 = statistics.median(alert_ms), percentile(alert_ms, 99)
        bench("alert_latency_p50_ratio", alert_p50 / floor_p50, "ratio")
        bench("alert_latency_p99_ratio", alert_p99 / floor_p99, "ratio")
        bench("alert_latency_p50_ms", alert_p50, "ms")
        bench("alert_latency_p99_ms", alert_p99, "ms")
        bench("alert_latency_floor_p50_ms", floor_p50, "ms")
        bench("alert_latency_floor_p99_ms", floor_p99, "ms")
        bench("alert_latency_arrived", len(alert_ms), "messages")
        bench("alert_latency_floor_arrived", len(floor_ms), "messages")
        note(
            f"targets: p50 ratio <= 2 {'met' if alert_p50 / floor_p50 <= 2 else 'NOT met'}, "
            f"p99 ratio <= 4 {'met' if alert_p99 / floor_p99 <= 4 else 'NOT met'}"
        )
        write_artifact("bench_alert_latency.txt")
        if len(alert_ms) < COUNT or len(floor_ms) < COUNT:
            sys.exit("not every message arrived")


if __name__ == "__main__":
    main()
