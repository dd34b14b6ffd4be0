"""Retention: import previews live in an expiring row (never the session) and are deleted when confirmed;
the hourly sweep deletes expired sessions, idempotency records older than 24 hours and expired previews."""

import io
from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from patients.models import IMPORT_PREVIEW_LIFETIME, IdempotencyRecord, ImportPreview, Patient, StaffRole
from patients.retention import IDEMPOTENCY_RETENTION, purge_expired
from patients.tasks import sweep_retention_task
from tests.builders import make_staff
from tests.patients.test_import import SAMPLE


def upload(client, clinic):
    file = io.BytesIO(SAMPLE.read_bytes())
    file.name = "patients.csv"
    return client.post(reverse("patients-import"), {"clinic": clinic.pk, "file": file})


def test_a_preview_is_a_row_of_its_uploader_and_nothing_of_the_file_is_in_the_session(client, coordinator, clinic):
    client.force_login(coordinator)

    preview = upload(client, clinic)

    stored = ImportPreview.objects.get()
    assert stored.user == coordinator and bytes(stored.content) == SAMPLE.read_bytes()
    assert stored.expires_at <= timezone.now() + IMPORT_PREVIEW_LIFETIME
    session = Session.objects.get(session_key=client.session.session_key).get_decoded()
    assert not any("import" in key for key in session) and len(str(session)) < 1000
    response = client.post(reverse("patients-import"), {"confirm": "1", "digest": preview.context["digest"]})
    assert response.status_code == 302 and Patient.objects.exists()
    assert not ImportPreview.objects.exists(), "confirming deletes the preview"


def test_an_expired_preview_cannot_be_confirmed(client, coordinator, clinic):
    client.force_login(coordinator)
    preview = upload(client, clinic)
    ImportPreview.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.post(reverse("patients-import"), {"confirm": "1", "digest": preview.context["digest"]})

    assert response.status_code == 302 and response["Location"] == reverse("patients-import")
    assert not Patient.objects.exists()


def test_another_users_preview_cannot_be_confirmed(client, coordinator, clinic):
    client.force_login(coordinator)
    digest = upload(client, clinic).context["digest"]
    colleague = make_staff(username="colin", clinic=clinic, role=StaffRole.COORDINATOR)
    client.force_login(colleague)

    client.post(reverse("patients-import"), {"confirm": "1", "digest": digest})

    assert not Patient.objects.exists() and ImportPreview.objects.count() == 1


def test_the_sweep_deletes_expired_sessions_old_idempotency_records_and_expired_previews(coordinator, clinic):
    now = timezone.now()
    live, stale = SessionStore(), SessionStore()
    live["k"], stale["k"] = 1, 2
    live.create()
    stale.create()
    Session.objects.filter(session_key=stale.session_key).update(expire_date=now - timedelta(seconds=1))
    fresh, old = (
        IdempotencyRecord.objects.create(principal="client:1", key=k, method="POST", path="/r/", request_hash="0")
        for k in ("fresh", "old")
    )
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=now - IDEMPOTENCY_RETENTION - timedelta(minutes=1))
    ImportPreview.keep(user=coordinator, clinic=clinic, file_name="a.csv", digest="d", content=b"x")
    ImportPreview.objects.update(expires_at=now - timedelta(seconds=1))

    sweep_retention_task.apply().get()  # the task beat runs, executed in this process

    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    assert not ImportPreview.objects.exists()
    assert purge_expired(now=timezone.now()).idempotency_records == 0, "running it again deletes nothing more"


def test_the_retention_sweep_has_its_own_beat_entry():
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-retention"]

    assert entry["task"] == "patients.tasks.sweep_retention_task" and entry["schedule"] <= 3600
