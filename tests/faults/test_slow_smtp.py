"""A slow or absent mail server never floods anyone: a message whose end-of-DATA answer comes after the
client's timeout is re-sent once, the identical bytes with the same Message-ID, after a long wait, and
never again; a 2-minute outage fails nothing and spaces every attempt as the backoff says; a row that is
backing off is not sent early however often `deliver()` is called."""

import time
from collections import defaultdict
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.utils import timezone

from alerts import outbox
from alerts.models import Delivery, DeliveryKind, DeliveryState
from alerts.outbox import MAX_ATTEMPTS, deliver
from alerts.reports import submit_report
from tests.processes import settled, wait_until

PAGES = 3
UNKNOWN_WAIT = 4  # DELIVERY_OUTCOME_UNKNOWN_WAIT_SECONDS for the worker (600 s in production)
# A 2-minute outage in real time; the backoff is set to 8 s doubling to 60 s (production: 30 s to 600 s).
OUTAGE_SECONDS = 120
BACKOFF_BASE, BACKOFF_MAX = 8, 60


def raise_pages(make_patient, make_procedure, clinician, count: int) -> list[int]:
    for _ in range(count):
        procedure = make_procedure(patient=make_patient(responsible_clinician=clinician))
        submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    return list(Delivery.objects.filter(kind=DeliveryKind.ALERT).values_list("id", flat=True))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.hazard("HAZ-40")
def test_a_server_answering_after_the_timeout_gets_one_identical_extra_copy_at_most(
    clinician, make_patient, make_procedure, fault_worker, fault_beat, holding_smtp, broker
):
    recorder = holding_smtp.recorder
    recorder.answer_late = 3  # keeps the message, answers end-of-DATA after the client gave up
    env = {
        "EMAIL_URL": holding_smtp.url,
        "EMAIL_TIMEOUT": "1",
        "DELIVERY_OUTCOME_UNKNOWN_WAIT_SECONDS": str(UNKNOWN_WAIT),
        "DELIVERY_SWEEP_SECONDS": "1",
    }
    fault_worker(env=env)
    fault_beat(env=env)
    pages = raise_pages(make_patient, make_procedure, clinician, PAGES)

    wait_until(
        lambda: Delivery.objects.filter(pk__in=pages, state=DeliveryState.FAILED).count() == PAGES,
        timeout=60,
        message="every page given up after its second unknown outcome",
    )
    time.sleep(UNKNOWN_WAIT + 4)  # sweeps keep running: a third copy would come now
    assert recorder.received() == dict.fromkeys(pages, 2), "one extra copy per page, no more"
    copies = defaultdict(list)
    for raw in recorder.raw:
        copies[int(message_from_bytes(raw)["X-Kyphofollow-Delivery"])].append(raw)
    for page, (first, second) in copies.items():
        assert first == second, f"page {page} was re-sent with other bytes"
        assert message_from_bytes(first)["Message-ID"] == f"<delivery-{page}.{_stamp(page)}@kyphofollow.invalid>"
    attempts = defaultdict(list)
    for delivery, at in recorder.attempts:
        attempts[int(delivery)].append(at)
    for page, times in attempts.items():
        assert len(times) == 2 and times[1] - times[0] >= UNKNOWN_WAIT, (page, times)
    for delivery in Delivery.objects.filter(pk__in=pages):
        assert (delivery.attempts, delivery.unknown_outcomes, delivery.message) == (2, 1, None)
        assert "outcome unknown" in delivery.last_error and "not re-sent again" in delivery.last_error


def _stamp(pk: int) -> int:
    return int(Delivery.objects.get(pk=pk).created_at.timestamp() * 1000)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.hazard("HAZ-40")
def test_a_two_minute_outage_fails_nothing_and_spaces_every_attempt_as_the_backoff_says(
    clinician, make_patient, make_procedure, fault_worker, fault_beat, holding_smtp, broker
):
    recorder = holding_smtp.recorder
    recorder.hold = False
    recorder.refuse = "421 4.3.2 Service not available"
    env = {
        "EMAIL_URL": holding_smtp.url,
        "DELIVERY_BACKOFF_BASE_SECONDS": str(BACKOFF_BASE),
        "DELIVERY_BACKOFF_MAX_SECONDS": str(BACKOFF_MAX),
        "DELIVERY_SWEEP_SECONDS": "1",  # the sweep runs all the time and must not add attempts
    }
    fault_worker(env=env)
    fault_beat(env=env)
    pages = raise_pages(make_patient, make_procedure, clinician, 10)
    started = time.time()
    time.sleep(OUTAGE_SECONDS)
    with recorder.lock:
        recorder.refuse = None
    wait_until(
        lambda: Delivery.objects.filter(pk__in=pages, state=DeliveryState.SENT).count() == len(pages),
        timeout=BACKOFF_MAX + 30,
        message="every page sent after the outage",
    )
    settled(lambda: len(recorder.raw), quiet_seconds=2, timeout=30, message="the SMTP server")

    received = recorder.received()  # the outage outlasted the first escalation step: its pages are here too
    assert {pk: received[pk] for pk in pages} == dict.fromkeys(pages, 1)
    assert max(received.values()) == 1
    assert not Delivery.objects.filter(state=DeliveryState.FAILED).exists()
    attempts = defaultdict(list)
    for delivery, at in recorder.attempts:
        attempts[int(delivery)].append(at)
    for delivery in Delivery.objects.filter(pk__in=pages):
        times = attempts[delivery.pk]
        assert len(times) == delivery.attempts <= MAX_ATTEMPTS, "each attempt handed to the worker once"
        assert times[-1] >= started + OUTAGE_SECONDS
        for n, (before, after) in enumerate(zip(times, times[1:], strict=False), start=1):
            floor = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (n - 1)) // 2
            assert after - before >= floor - 0.5, f"page {delivery.pk}: attempt {n + 1} {after - before:.1f} s after"
    print({pk: [round(t - started, 1) for t in times] for pk, times in attempts.items()})


@pytest.mark.django_db(transaction=True)
@pytest.mark.hazard("HAZ-40")
def test_deliver_called_again_and_again_for_a_row_backing_off_does_nothing_until_its_next_attempt(
    clinician, make_patient, make_procedure, smtp_settings, monkeypatch
):
    monkeypatch.setattr(outbox, "BACKOFF_BASE_SECONDS", 4)  # the first retry waits 2 to 4 s
    smtp_server = smtp_settings
    smtp_server.fail(1)
    (page,) = raise_pages(make_patient, make_procedure, clinician, 1)
    assert deliver(delivery_id=page).state == DeliveryState.PENDING
    due = Delivery.objects.get(pk=page).next_attempt_at

    calls = 0
    while timezone.now() < due - timedelta(milliseconds=50):
        assert deliver(delivery_id=page).state == "skipped"
        calls += 1
    row = Delivery.objects.get(pk=page)
    assert calls > 8 and (row.state, row.attempts) == (DeliveryState.PENDING, 1), calls
    assert not smtp_server.messages

    time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 0.01)
    assert deliver(delivery_id=page).state == DeliveryState.SENT
    assert len(smtp_server.messages) == 1
