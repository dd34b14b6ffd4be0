"""A worker keeps its database connection across tasks, as a web process does across requests.

Celery's Django fixup would close it before and after every task, so that each page would first
wait for a new PostgreSQL connection (settings.CELERY_DB_REUSE_MAX, kyphofollow/celery.py)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts.reports import submit_report
from tests.processes import settled, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def sessions_opened() -> int:
    """Connections ever made to the test database, as PostgreSQL counts them (once each backend
    has reported its statistics, within a second or so of going idle or exiting)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def settled_sessions() -> int:
    return settled(sessions_opened, quiet_seconds=3, timeout=20, message="PostgreSQL's session count")


def test_pages_sent_by_one_task_each_reuse_the_worker_database_connection(
    clinician, make_procedure, worker, smtp_server
):
    procedures = [make_procedure(performed_on=timezone.localdate() - timedelta(days=2)) for _ in range(11)]
    worker(concurrency=1, env={"EMAIL_URL": smtp_server.url})
    submit_report(procedure=procedures[0], source="api", pain_now=7, red_flags=["RF-02"])
    wait_until(lambda: len(smtp_server.messages) == 1, timeout=60, message="the first page")
    before = settled_sessions()

    for procedure in procedures[1:]:  # each report hands its page to the worker in a task of its own
        submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    wait_until(lambda: len(smtp_server.messages) == 11, timeout=60, message="eleven pages")

    opened = settled_sessions() - before
    assert opened <= 1, f"{opened} database connections opened for 10 tasks"
