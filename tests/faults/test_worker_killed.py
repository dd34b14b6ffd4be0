"""SIGKILL the worker in the middle of 500 pages: nothing is lost, and only the sends killed in flight
may arrive twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Delivery, DeliveryKind, DeliveryState
from alerts.outbox import SENDING_LEASE, sweep_deliveries
from patients.models import StaffRole
from tests.builders import bulk_staff
from tests.faults.helpers import delivery_ids_received
from tests.processes import settled, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CLINICIANS = 25
ALERTS = 20  # x 25 clinicians = 500 pages, one task of 25 per alert
CONCURRENCY = 4


def test_sigkill_during_500_pages_loses_none_and_repeats_only_the_sends_in_flight(
    clinic, raise_alerts, fault_worker, smtp_server, broker
):
    bulk_staff(clinic=clinic, role=StaffRole.CLINICIAN, count=CLINICIANS, prefix="dr")
    smtp_server.recorder.delay_seconds = 0.02  # every send is in flight for a while
    env = {"EMAIL_URL": smtp_server.url}
    first = fault_worker(concurrency=CONCURRENCY, env=env, wait=False)  # starts while the alerts are raised

    raise_alerts(ALERTS)
    total = Delivery.objects.filter(kind=DeliveryKind.ALERT).count()
    assert total == CLINICIANS * ALERTS
    wait_until(lambda: len(smtp_server.messages) >= 100, timeout=60, message="the first 100 pages")

    first.kill()
    in_flight = set(Delivery.objects.filter(state=DeliveryState.SENDING).values_list("id", flat=True))
    unsent_at_kill = Delivery.objects.exclude(state=DeliveryState.SENT).count()
    assert unsent_at_kill > 100, "the worker was nearly done before it was killed; nothing was tested"
    assert len(in_flight) <= CONCURRENCY, f"{len(in_flight)} sends claimed at once by {CONCURRENCY} processes"

    # A new worker takes what is still queued. The tasks the killed worker held stay unacknowledged in the
    # broker (until its visibility timeout, an hour): their rows wait, pending or stuck in `sending`.
    fault_worker(concurrency=CONCURRENCY, env=env)
    wait_until(lambda: broker.queued() == 0, timeout=60, message="the new worker taking the queued tasks")
    settled(
        lambda: Delivery.objects.filter(state=DeliveryState.SENT).count(),
        quiet_seconds=2,
        timeout=90,
        message="the new worker draining the queue",
    )
    assert Delivery.objects.exclude(state=DeliveryState.SENT).exists(), "nothing was left for the sweep"

    # The sweep, once the lease of the killed sends has run out. `now` is passed, not faked with
    # time_machine: time_machine also moves time.monotonic, which the SMTP server's event loop runs on.
    sweep_deliveries(now=timezone.now() + SENDING_LEASE + timedelta(seconds=1))
    wait_until(
        lambda: not Delivery.objects.exclude(state=DeliveryState.SENT).exists(),
        timeout=90,
        message="every page sent after the kill",
    )
    settled(lambda: len(smtp_server.messages), quiet_seconds=1, timeout=30, message="the SMTP server")

    received = delivery_ids_received(smtp_server)
    assert set(received) == set(Delivery.objects.values_list("id", flat=True)), "a page was lost"
    repeated = {delivery_id for delivery_id, copies in received.items() if copies > 1}
    assert repeated <= in_flight, f"pages {sorted(repeated - in_flight)} were repeated but not in flight at the kill"
    assert max(received.values()) <= 2
    duplicates = sum(received.values()) - len(received)
    assert duplicates <= len(in_flight) <= CONCURRENCY
    print(f"{total} pages; killed with {unsent_at_kill} unsent, {len(in_flight)} in flight; {duplicates} duplicates")
