"""The broker is not a database: Redis killed and flushed with tasks queued loses the tasks, never the
messages, because the delivery sweep hands out again what the database still holds as pending."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import Alert, Delivery, DeliveryState, SymptomReport
from alerts.outbox import PAGE_LEASE, sweep_deliveries
from interop.auth import create_api_client
from patients.models import StaffRole
from tests.builders import bulk_staff
from tests.faults.helpers import delivery_ids_received
from tests.processes import settled, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def restart_empty(broker) -> None:
    """Kill the redis-server, start it again on the same port and flush it: every queued task is gone."""
    broker.kill()
    assert not broker.ping()
    broker.start()
    broker.flushall()
    assert broker.queued() == 0


def test_tasks_lost_with_a_flushed_redis_are_sent_once_by_the_delivery_sweep(
    clinic, raise_alerts, fault_worker, smtp_server, broker
):
    bulk_staff(clinic=clinic, role=StaffRole.CLINICIAN, count=20, prefix="dr")
    raise_alerts(3)  # 60 pages, queued with no worker running
    assert broker.queued() > 0

    restart_empty(broker)
    fault_worker(env={"EMAIL_URL": smtp_server.url})
    assert settled(lambda: len(smtp_server.messages), quiet_seconds=1, timeout=10, message="the worker") == 0
    pending = Delivery.objects.filter(state=DeliveryState.PENDING)
    assert pending.count() == 60, "the lost tasks' rows must still be pending"

    # Handed out once already (their tasks were lost with Redis): handed out again once the page lease
    # has passed without a claim.
    sweep_deliveries(now=timezone.now() + PAGE_LEASE + timedelta(seconds=1))
    wait_until(
        lambda: Delivery.objects.filter(state=DeliveryState.SENT).count() == 60, timeout=60, message="60 pages sent"
    )
    settled(lambda: len(smtp_server.messages), quiet_seconds=1, timeout=10, message="the SMTP server")
    received = delivery_ids_received(smtp_server)
    assert sorted(received) == sorted(Delivery.objects.values_list("id", flat=True))
    assert set(received.values()) == {1}


def test_a_worker_running_through_the_outage_reconnects_and_nothing_is_sent_twice(
    clinic, raise_alerts, fault_worker, smtp_server, broker
):
    bulk_staff(clinic=clinic, role=StaffRole.CLINICIAN, count=20, prefix="dr")
    smtp_server.recorder.delay_seconds = 0.05
    fault_worker(env={"EMAIL_URL": smtp_server.url})
    raise_alerts(3)
    wait_until(lambda: len(smtp_server.messages) >= 5, timeout=30, message="the first pages")

    restart_empty(broker)
    # The worker reconnects by itself; the sweep re-enqueues what is still pending from the database once
    # the page lease has passed without a claim.
    time.sleep(PAGE_LEASE.total_seconds() + 1)
    sweep_deliveries(now=timezone.now())
    wait_until(
        lambda: Delivery.objects.filter(state=DeliveryState.SENT).count() == 60,
        timeout=60,
        message="60 pages sent after the outage",
    )
    settled(lambda: len(smtp_server.messages), quiet_seconds=1, timeout=10, message="the SMTP server")
    received = delivery_ids_received(smtp_server)
    assert sorted(received) == sorted(Delivery.objects.values_list("id", flat=True))
    assert set(received.values()) == {1}


def test_a_report_posted_while_redis_is_down_is_saved_answered_201_and_paged_later(
    clinic, clinician, make_patient, make_procedure, fault_worker, smtp_server, broker
):
    """The outbox row commits with the report; only the fast-path enqueue (on commit) fails. The EHR
    must be told the report was saved, or it retries and the patient's report is stored twice."""
    procedure = make_procedure(patient=make_patient(responsible_clinician=clinician))
    _, token = create_api_client(name="EHR", clinics=[clinic], scopes=["read", "write"])
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    broker.kill()
    response = api.post(
        "/api/v1/symptom-reports/",
        {"patient": procedure.patient_id, "procedure": procedure.pk, "pain_now": 7, "red_flags": ["RF-02"]},
        format="json",
    )
    saved = SymptomReport.objects.count()
    broker.start()

    assert saved == 1 and Alert.objects.count() == 1 and Delivery.objects.count() == 1
    fault_worker(env={"EMAIL_URL": smtp_server.url})
    sweep_deliveries(now=timezone.now())
    wait_until(lambda: len(smtp_server.messages) == 1, timeout=30, message="the page, sent by the sweep")
    assert response.status_code == 201, (
        f"the report and its page were committed, but the API answered {response.status_code}: "
        f"{response.content[:120]!r}"
    )
