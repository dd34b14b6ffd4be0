"""A webhook receiver that drips its answer a byte at a time cannot delay a page: webhooks run on their
own queue and worker, and each send is cut at its one deadline."""

import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Delivery, DeliveryKind, DeliveryState, WebhookEndpoint
from alerts.reports import submit_report
from tests.processes import DripReceiver, wait_until

SECRET = "whsec_" + base64.b64encode(b"kyphofollow-isolation-secret-01234").decode()
DEADLINE = 5  # seconds (production: 10); short, to keep the test fast


@pytest.mark.worker
@pytest.mark.hazard("HAZ-48")
@pytest.mark.django_db(transaction=True)
def test_a_dripping_webhook_receiver_is_cut_at_the_deadline_while_an_emergency_page_arrives_on_time(
    clinic, clinician, make_patient, make_procedure, fault_worker, smtp_server, broker
):
    drip = DripReceiver(interval=0.2).start()
    try:
        env = {"EMAIL_URL": smtp_server.url, "WEBHOOK_DEADLINE_SECONDS": str(DEADLINE), "WEBHOOK_ALLOW_LOOPBACK": "1"}
        fault_worker(env=env, concurrency=1, queues=("celery",))  # pages, reminders, sweeps
        fault_worker(env=env, concurrency=1, queues=("webhooks",))
        WebhookEndpoint.objects.create(clinic=clinic, url=drip.url, secret=SECRET)
        first, second = (
            make_procedure(
                patient=make_patient(responsible_clinician=clinician),
                performed_on=timezone.localdate() - timedelta(days=2),
            )
            for _ in range(2)
        )
        submit_report(procedure=first, source="api", pain_now=7, red_flags=["RF-02"])
        wait_until(lambda: drip.opened == 1, timeout=30, message="the webhook worker to be held by the receiver")

        started = time.monotonic()  # the webhook worker is busy: a new EMERGENCY must still page at once
        submit_report(procedure=second, source="api", pain_now=7, red_flags=["RF-02"])
        wait_until(lambda: len(smtp_server.messages) == 2, timeout=DEADLINE, message="both EMERGENCY pages")
        paged_after = time.monotonic() - started
        assert not drip.connections, "the pages arrived while the first webhook was still dripping"

        hook = Delivery.objects.filter(kind=DeliveryKind.WEBHOOK).earliest("id")
        wait_until(lambda: drip.connections, timeout=DEADLINE + 5, message="the dripping POST to be cut")
        wait_until(
            lambda: Delivery.objects.get(pk=hook.pk).state == DeliveryState.PENDING,
            timeout=5,
            message="the failed attempt to be recorded",
        )
    finally:
        drip.stop()

    hook.refresh_from_db()
    assert (hook.attempts, hook.last_error) == (1, f"timed out after {DEADLINE} s")
    assert DEADLINE - 0.5 <= drip.connections[0] <= DEADLINE + 2.5, drip.connections
    assert paged_after < DEADLINE, paged_after
    assert set(Delivery.objects.filter(kind=DeliveryKind.ALERT).values_list("state", flat=True)) == {DeliveryState.SENT}
