"""Shared fixtures: personas and a few builders. Tests run on PostgreSQL only, never SQLite."""

from datetime import date, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from patients.models import Clinic, ClinicMembership, StaffRole
from patients.roles import sync_staff_groups
from patients.services import record_procedure, register_patient


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
    return Clinic.objects.create(
        name="Northside Spine",
        slug="northside",
        time_zone="Europe/London",
        phone="+44 20 0000 0001",
        email="spine@northside.invalid",
    )


@pytest.fixture
def other_clinic(db):
    return Clinic.objects.create(
        name="Southside Spine",
        slug="southside",
        time_zone="America/New_York",
        phone="+1 555 0100",
        email="spine@southside.invalid",
    )


def make_staff(django_user_model, username, clinic, role, **extra):
    user = django_user_model.objects.create_user(
        username=username, password="correct-horse-battery", email=f"{username}@staff.invalid", is_staff=True, **extra
    )
    ClinicMembership.objects.create(user=user, clinic=clinic, role=role)
    sync_staff_groups(user)
    return user


@pytest.fixture
def coordinator(django_user_model, clinic):
    return make_staff(django_user_model, "charlie", clinic, StaffRole.COORDINATOR)


@pytest.fixture
def other_clinic_coordinator(django_user_model, other_clinic):
    return make_staff(django_user_model, "olivia", other_clinic, StaffRole.COORDINATOR)


@pytest.fixture
def clinician(django_user_model, clinic):
    return make_staff(django_user_model, "dr_alice", clinic, StaffRole.CLINICIAN)


def birth_date_for_age(age: int) -> date:
    today = timezone.localdate()
    return today.replace(year=today.year - age) - timedelta(days=10)


@pytest.fixture
def make_patient(clinic):
    counter = iter(range(1, 10_000))

    def build(**fields):
        number = next(counter)
        defaults = {
            "clinic": clinic,
            "mrn": f"MRN{number:05d}",
            "given_name": "Given",
            "family_name": "Family",
            "birth_date": birth_date_for_age(75),
            "time_zone": "Europe/London",
            "email": f"patient{number}@example.invalid",
            "email_consent": True,
        }
        defaults.update(fields)
        return register_patient(**defaults)

    return build


@pytest.fixture
def make_procedure(make_patient):
    def build(patient=None, levels=None, **fields):
        defaults = {
            "kind": "kyphoplasty",
            "performed_on": timezone.localdate() - timedelta(days=1),
            "fracture_diagnosed_on": timezone.localdate() - timedelta(days=10),
        }
        defaults.update(fields)
        return record_procedure(patient=patient or make_patient(), levels=levels or [{"level": "L1"}], **defaults)

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
