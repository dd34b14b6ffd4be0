"""A page whose worker is SIGKILLed in the middle of the send arrives within 60 s of the kill, from the
surviving worker, once more at most: the claim of a page is renewed by its live worker every
DELIVERY_HEARTBEAT_SECONDS and taken over by the delivery sweep (beat, every DELIVERY_SWEEP_SECONDS)
once it has not been renewed for DELIVERY_PAGE_LEASE_SECONDS; an EMERGENCY page never waits on the
5-minute lease of the other messages."""

import os
import time

import pytest
from django.utils import timezone

from alerts.models import Delivery, DeliveryKind, DeliveryState
from alerts.reports import submit_report
from tests.faults.helpers import process_group_sending_from
from tests.processes import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RECOVERY_LIMIT_SECONDS = 60


@pytest.mark.hazard("HAZ-38")
def test_a_page_killed_in_flight_with_its_worker_arrives_within_60_s_and_once_more_at_most(
    clinician, make_patient, make_procedure, fault_worker, fault_beat, holding_smtp, broker
):
    env = {"EMAIL_URL": holding_smtp.url, "EMAIL_TIMEOUT": "120"}  # the held send waits for its answer
    recorder = holding_smtp.recorder
    fault_worker(env=env, concurrency=1)
    fault_beat()
    procedure = make_procedure(patient=make_patient(responsible_clinician=clinician))
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    page = Delivery.objects.get(kind=DeliveryKind.ALERT)

    # The page is in flight: its body is at the SMTP server, which holds its answer.
    wait_until(lambda: recorder.in_flight, timeout=30, message="the page at the SMTP server")
    held_since = time.time()
    group = wait_until(
        lambda: process_group_sending_from(next(iter(recorder.in_flight)), holding_smtp.port),
        timeout=10,
        message="the sending worker",
    )
    survivor = fault_worker(env=env, concurrency=1)  # takes nothing until the page is handed out again
    assert group != survivor.process.pid
    # Its live worker renews the claim: however long the send takes, the sweep leaves it alone.
    wait_until(lambda: time.time() - held_since > 15, timeout=30, message="a send longer than the page lease")
    assert Delivery.objects.filter(pk=page.pk, state=DeliveryState.SENDING, attempts=1).exists()
    os.killpg(group, 9)
    killed_at = time.time()
    time.sleep(1)  # the server sees the connection drop (the held message is dropped with it)
    with recorder.lock:
        recorder.hold = False

    arrived = wait_until(
        lambda: recorder.arrival_of(page.pk), timeout=RECOVERY_LIMIT_SECONDS + 30, message="the page after the kill"
    )
    recovery = arrived - killed_at
    time.sleep(3)  # a second copy would have come by now
    assert recovery <= RECOVERY_LIMIT_SECONDS, f"the page arrived {recovery:.1f} s after its worker was killed"
    assert recorder.received()[page.pk] == 1, "the killed send was never completed: one copy, not two"
    page.refresh_from_db()
    assert (page.state, page.attempts) == (DeliveryState.SENT, 2)
    assert page.sent_at <= timezone.now()
    print(f"page recovered {recovery:.1f} s after the kill")
