"""End to end with a real worker, real Redis and a real SMTP server: every reminder arrives, once."""

import time
from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from alerts.models import Delivery, DeliveryState
from alerts.outbox import SENDING_LEASE, sweep_deliveries
from alerts.reminders import sweep_reminders
from patients.models import Checkpoint
from tests.processes import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def delivery_ids_received(smtp_server) -> Counter:
    return Counter(int(message["X-Kyphofollow-Delivery"]) for message in smtp_server.messages)


def plan_first_reminders(make_procedure, count: int):
    """`count` procedures whose DXA reminder (CP-06, fracture + 70 days) falls due today."""
    fracture = timezone.localdate() - timedelta(days=70)
    for _ in range(count):
        make_procedure(performed_on=fracture + timedelta(days=2), fracture_diagnosed_on=fracture)
    return Checkpoint.objects.filter(code="CP-06").first().due_at


def test_swept_reminders_are_delivered_by_the_worker_to_the_smtp_server_once_each(make_procedure, worker, smtp_server):
    due_at = plan_first_reminders(make_procedure, 25)
    worker(env={"EMAIL_URL": smtp_server.url})

    written = sweep_reminders(now=due_at)
    sweep_reminders(now=due_at + timedelta(minutes=1))

    wait_until(lambda: len(smtp_server.messages) >= 25, timeout=60, message="25 reminders at the SMTP server")
    time.sleep(1)  # anything extra would have arrived by now
    assert written == 25
    received = delivery_ids_received(smtp_server)
    assert sorted(received) == sorted(Delivery.objects.values_list("id", flat=True))
    assert set(received.values()) == {1}
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}
    assert {message["Subject"] for message in smtp_server.messages} == {"A reminder from Northside Spine"}


@pytest.mark.hazard("HAZ-08")
def test_worker_killed_while_sending_loses_nothing_and_repeats_at_most_the_sends_in_flight(
    make_procedure, worker, smtp_server
):
    due_at = plan_first_reminders(make_procedure, 120)
    smtp_server.recorder.delay_seconds = 0.05
    first = worker(concurrency=2, env={"EMAIL_URL": smtp_server.url})
    sweep_reminders(now=due_at)
    wait_until(lambda: len(smtp_server.messages) >= 20, timeout=60, message="the first sends")

    first.kill()
    in_flight = Delivery.objects.filter(state=DeliveryState.SENDING).count()
    unsent_at_kill = Delivery.objects.exclude(state=DeliveryState.SENT).count()
    assert unsent_at_kill > 0, "the worker finished before it was killed; nothing was tested"

    # The next sweep, once the lease of the killed sends has run out, hands everything out again. The
    # reminders fall due at 09:00 local time, which may still be ahead of the clock that runs the test.
    worker(concurrency=2, env={"EMAIL_URL": smtp_server.url})
    with time_machine.travel(max(timezone.now(), due_at) + SENDING_LEASE + timedelta(seconds=1), tick=True):
        sweep_deliveries(now=timezone.now())
    wait_until(
        lambda: not Delivery.objects.exclude(state=DeliveryState.SENT).exists(),
        timeout=90,
        message="every delivery sent after the kill",
    )

    received = delivery_ids_received(smtp_server)
    assert set(received) == set(Delivery.objects.values_list("id", flat=True)), "a reminder was lost"
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= max(in_flight, 2), f"{duplicates} duplicates for {in_flight} sends in flight"
