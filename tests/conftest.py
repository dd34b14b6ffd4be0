"""Shared fixtures: personas and the processes tests talk to; the rows come from tests/builders.py.
Tests run on PostgreSQL only, never SQLite."""

import itertools

import pytest
from django.conf import settings

# The builders' own checks (a check-in planned when expected) report like a test's asserts.
pytest.register_assert_rewrite("tests.builders")
# The hazard log's evidence table (docs/safety/hazard-log.md → artifacts/hazards.md).
pytest_plugins = ["tests.hazards"]

from patients.models import StaffRole  # noqa: E402
from tests import builders  # noqa: E402


def pytest_configure(config):
    if settings.DATABASES["default"]["HOST"] == str(settings.EMBEDDED_POSTGRES_DIR):
        # Not the default, the `make run` cluster on a Unix socket: worker processes started by the
        # tests are handed the database as a TCP URL (tests/processes.py).
        raise pytest.UsageError(
            "The tests need DATABASE_URL=postgres://… (a PostgreSQL server on TCP): run them with `make test`."
        )
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        raise pytest.UsageError("The tests need a real Redis broker: set REDIS_URL=redis://… (or run `make test`).")


@pytest.fixture
def clinic(db):
    return builders.make_clinic()


@pytest.fixture
def other_clinic(db):
    return builders.make_clinic(
        name="Southside Spine",
        slug="southside",
        time_zone="America/New_York",
        phone="+1 555 0100",
        email="spine@southside.invalid",
    )


@pytest.fixture
def coordinator(clinic):
    return builders.make_staff(username="charlie", clinic=clinic, role=StaffRole.COORDINATOR)


@pytest.fixture
def other_clinic_coordinator(other_clinic):
    return builders.make_staff(username="olivia", clinic=other_clinic, role=StaffRole.COORDINATOR)


@pytest.fixture
def clinician(clinic):
    return builders.make_staff(username="dr_alice", clinic=clinic, role=StaffRole.CLINICIAN)


@pytest.fixture
def make_patient(clinic):
    """make_patient(**fields): the next patient of `clinic` (or of `fields["clinic"]`), registered."""
    numbers = itertools.count(1)

    def build(**fields):
        fields.setdefault("clinic", clinic)
        return builders.make_patient(number=next(numbers), **fields)

    return build


@pytest.fixture
def make_procedure(make_patient):
    """make_procedure(patient=None, levels=None, **fields): recorded and planned; a new patient if none."""

    def build(patient=None, levels=None, **fields):
        return builders.make_procedure(patient=patient or make_patient(), levels=levels, **fields)

    return build


@pytest.fixture
def purged_broker():
    """An empty Redis queue, so no task from an earlier test reaches this test's worker."""
    from kyphofollow.celery import app

    def purge():
        with app.connection_for_write() as connection:  # a fresh connection, whatever pools others left
            connection.default_channel.queue_purge(app.conf.task_default_queue)

    purge()
    yield app
    purge()


@pytest.fixture
def worker(transactional_db, purged_broker, tmp_path):
    """A real Celery worker process on Redis and the test database; stopped after the test."""
    from tests.processes import WorkerProcess

    started = []

    def start(**kwargs):
        kwargs.setdefault("log_path", tmp_path / f"worker-{len(started)}.log")
        process = WorkerProcess(**kwargs).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def smtp_server():
    """A real local SMTP server (aiosmtpd) that records what it receives."""
    from tests.processes import SMTPServer

    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(settings, smtp_server):
    """Send this process's mail to the local SMTP server instead of Django's test outbox."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return smtp_server


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Staff personas are created in most tests; the production hasher is deliberately slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def webhook_receiver():
    """A real local HTTP endpoint standing in for a clinic's EHR."""
    from tests.processes import WebhookReceiver

    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()
