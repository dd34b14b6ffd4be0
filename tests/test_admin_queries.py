"""Query discipline: every admin changelist runs the same number of queries for 10 rows and for 500,
for a superuser, who is shown every row (clinic scoping only ever narrows the querysets)."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.models import Delivery
from tests.patients.bulk import make_alerts

pytestmark = pytest.mark.django_db


def add_rows(clinic, count: int) -> None:
    from django.utils import timezone

    from patients.models import Checkpoint, Procedure

    make_alerts(clinic, count)
    now = timezone.now()
    procedures = list(Procedure.objects.order_by("-id")[:count])
    Checkpoint.objects.bulk_create(
        Checkpoint(
            procedure=p,
            code="CP-05",
            title="Fracture-risk and falls assessment",
            audience="coordinator_task",
            source="E8",
            protocol_version="2026.1",
            window_start=now.date(),
            target_date=now.date(),
            window_end=now.date(),
            opens_at=now,
            due_at=now,
            closes_at=now,
            state="due",
        )
        for p in procedures
    )
    Delivery.objects.bulk_create(
        Delivery(
            kind="digest",
            cause=f"bulk:{p.pk}",
            recipient="x@example.invalid",
            clinic=clinic,
            next_attempt_at=now,
            state="failed",
        )
        for p in procedures
    )


def changelists():
    return sorted(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
        if model._meta.app_label in {"patients", "alerts"}
    )


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured)


def test_every_changelist_runs_a_fixed_number_of_queries_whatever_the_row_count(client, clinic, django_user_model):
    superuser = django_user_model.objects.create_superuser("root_admin", "root@example.invalid", "x-long-password")
    client.force_login(superuser)
    add_rows(clinic, 10)
    few = {url: queries(client, url) for url in changelists()}
    add_rows(clinic, 490)
    many = {url: queries(client, url) for url in changelists()}

    assert many == few
