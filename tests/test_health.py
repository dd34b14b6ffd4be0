"""`/health/` reports the database, the broker and the worker, each both ways."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts.heartbeats import record_heartbeat
from alerts.models import WorkerHeartbeat
from alerts.tasks import record_heartbeat_task
from tests.processes import wait_until


@pytest.fixture
def fresh_heartbeat(db):
    return record_heartbeat(hostname="worker@test")


def test_all_dependencies_up_answers_200(client, fresh_heartbeat):
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert all(check["ok"] for check in body["checks"].values())


def test_unreachable_broker_answers_503_naming_it(client, fresh_heartbeat, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]
    assert "broker unreachable" in response.json()["checks"]["broker"]["error"]


def test_missing_heartbeat_answers_503_naming_the_worker(client, db):
    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json()["down"] == ["worker"]


def test_stale_heartbeat_answers_503_naming_the_worker(client, fresh_heartbeat):
    WorkerHeartbeat.objects.update(beat_at=timezone.now() - timedelta(minutes=10))

    response = client.get("/health/")

    assert response.status_code == 503
    assert "older than" in response.json()["checks"]["worker"]["error"]


def test_unreachable_database_answers_503_naming_it(client, fresh_heartbeat):
    real_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1
    try:
        response = client.get("/health/")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real_port

    assert response.status_code == 503
    assert response.json()["down"] == ["database", "worker"]
    assert response.json()["checks"]["database"]["error"].startswith("database unreachable")


@pytest.mark.worker
def test_real_worker_heartbeat_turns_health_green(client, worker):
    assert client.get("/health/").status_code == 503
    worker()

    record_heartbeat_task.delay()

    wait_until(lambda: client.get("/health/").status_code == 200, timeout=60, message="a worker heartbeat")
    assert WorkerHeartbeat.objects.count() == 1
