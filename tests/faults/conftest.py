"""Fault-injection fixtures. Every test here gets its own redis-server, so killing, flushing or restarting
the broker never touches the shared Redis, and no other test run's worker can take (or purge) these
tasks. The test that restarts PostgreSQL runs after everything else in the session."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import WorkerHeartbeat
from alerts.reports import submit_report
from tests.faults.helpers import BeatProcess, HoldingRecorder, RedisServer, celery_broker
from tests.processes import WorkerProcess, free_port, wait_until


def pytest_collection_modifyitems(session, config, items):
    """Run the PostgreSQL restart last, so that nothing else in this run sees the outage."""
    last = [item for item in items if item.get_closest_marker("restarts_postgres")]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker("restarts_postgres")] + last


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.faults_failed = True
    return report


@pytest.fixture
def process_logs(request, tmp_path):
    """After a failed test, the tail of every worker, beat and redis-server log it left (shown by pytest
    as the test's teardown output)."""
    yield
    if getattr(request.node, "faults_failed", False):
        for log in sorted(tmp_path.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()
            print(f"--- {log.name}, last 40 of {len(lines)} lines ---", *lines[-40:], sep="\n")


@pytest.fixture
def private_redis(tmp_path, process_logs):
    """A redis-server of this test's own, killed afterwards."""
    server = RedisServer(log_path=tmp_path / "redis.log").start()
    yield server
    server.kill()


@pytest.fixture
def broker(private_redis, settings):
    """This process's Celery app (and so every `delay_on_commit`) publishes to the private redis-server."""
    settings.CELERY_BROKER_URL = private_redis.url
    with celery_broker(private_redis.url):
        yield private_redis


@pytest.fixture
def fault_worker(transactional_db, broker, tmp_path):
    """fault_worker(concurrency=…, env={…}, queues=…) starts a real `celery worker` on the private broker and waits
    until it is ready (its start-up heartbeat row); every worker is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(
        *,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
        wait: bool = True,
        queues: tuple[str, ...] = ("celery", "webhooks"),
    ) -> WorkerProcess:
        known = set(WorkerHeartbeat.objects.values_list("hostname", flat=True))
        process = WorkerProcess(
            concurrency=concurrency,
            queues=queues,
            env={"REDIS_URL": broker.url, "CELERY_BROKER_URL": broker.url, **(env or {})},
            log_path=tmp_path / f"worker-{len(started)}.log",
        ).start()
        started.append(process)
        if wait:
            wait_until(
                lambda: WorkerHeartbeat.objects.exclude(hostname__in=known).exists(),
                timeout=30,
                message="the worker's start-up heartbeat",
            )
        return process

    yield start
    for process in started:
        process.kill()  # nothing to finish: the test is over, and the private broker goes with it


@pytest.fixture
def raise_alerts(make_procedure):
    """raise_alerts(n): n patients (no responsible clinician) each report RF-02, so each new EMERGENCY
    alert pages every clinician of the clinic at once. Returns the alerts' procedures."""

    def raise_(count: int) -> list:
        procedures = []
        for _ in range(count):
            procedure = make_procedure(performed_on=timezone.localdate() - timedelta(days=2))
            submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
            procedures.append(procedure)
        return procedures

    return raise_


@pytest.fixture
def fault_beat(broker, tmp_path):
    """fault_beat(env={…}) starts `celery beat` with the project's schedule on the private broker."""
    started: list[BeatProcess] = []

    def start(*, env: dict[str, str] | None = None) -> BeatProcess:
        beat = BeatProcess(broker_url=broker.url, tmp_path=tmp_path, env=env).start()
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.kill()


@pytest.fixture
def holding_smtp():
    """An aiosmtpd server whose handler holds, refuses or answers late (tests/faults/helpers.py);
    `.recorder` is the handler, `.url` the EMAIL_URL."""
    from aiosmtpd.controller import Controller

    recorder = HoldingRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.recorder = recorder
    controller.url = f"smtp://127.0.0.1:{controller.port}"
    yield controller
    with recorder.lock:
        recorder.hold = False
    controller.stop()
