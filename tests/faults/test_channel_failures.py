"""The mail server and the EHR's webhook endpoint answer errors, time out, then recover: every message
arrives once, its failed attempts are counted and their errors recorded, and no retry waits over 600 s."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import outbox
from alerts.models import Alert, AlertEvent, Delivery, DeliveryKind, DeliveryState, WebhookEndpoint
from alerts.outbox import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_MAX_SECONDS,
    MAX_ATTEMPTS,
    OUTCOME_UNKNOWN_WAIT,
    deliver,
    sweep_deliveries,
)
from alerts.reports import submit_report
from tests.faults.helpers import delivery_ids_received, webhook_ids_received
from tests.processes import settled, wait_until

SECRET = "whsec_" + base64.b64encode(b"kyphofollow-faults-secret-0123456789").decode()
SMTP_451 = "451 4.3.0 Try again later"


@pytest.fixture
def endpoint(clinic, webhook_receiver):
    return WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)


def red_flag_alerts(make_patient, make_procedure, clinician, count: int) -> None:
    """`count` EMERGENCY alerts, each one page (to the responsible clinician) and one `alert.raised` webhook."""
    for _ in range(count):
        procedure = make_procedure(
            patient=make_patient(responsible_clinician=clinician), performed_on=timezone.localdate() - timedelta(days=2)
        )
        submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])


def backoff_ceiling(attempts: int) -> int:
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))


def assert_backed_off(delivery: Delivery) -> None:
    """A pending row after a failure waits between half and all of the capped exponential ceiling; after a
    send whose end-of-DATA answer never came, the long outcome-unknown wait."""
    wait = (delivery.next_attempt_at - delivery.updated_at).total_seconds()
    if "outcome unknown" in delivery.last_error:
        assert abs(wait - OUTCOME_UNKNOWN_WAIT.total_seconds()) <= 1, wait
        return
    ceiling = backoff_ceiling(delivery.attempts)
    assert ceiling // 2 - 1 <= wait <= ceiling + 1 <= BACKOFF_MAX_SECONDS + 1, (delivery.attempts, wait)


def due_now(rows) -> None:
    """The backoff has run out (time passes: the claim honours `next_attempt_at`, so the rows are made
    due rather than swept early) and the retry tasks were lost: the sweep hands every row out again."""
    rows.update(next_attempt_at=timezone.now(), enqueued_at=None)
    sweep_deliveries(now=timezone.now())


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_retries_through_smtp_451_smtp_timeout_and_http_503_until_each_message_lands_once(
    clinician, make_patient, make_procedure, endpoint, fault_worker, smtp_server, webhook_receiver, broker
):
    fault_worker(env={"EMAIL_URL": smtp_server.url, "EMAIL_TIMEOUT": "1"})
    rows = Delivery.objects.order_by("id")

    def after_round(attempts: int, page_error: str, hook_error: str) -> None:
        wait_until(
            lambda: all(d.state == DeliveryState.PENDING and d.attempts >= attempts for d in rows.all()),
            timeout=60,
            message=f"attempt {attempts} of every delivery to fail",
        )
        for delivery in rows.all():
            expected = page_error if delivery.kind == DeliveryKind.ALERT else hook_error
            assert delivery.last_error.startswith(expected), (delivery.kind, delivery.last_error)
            assert_backed_off(delivery)

    # Round 1: the mail server answers 451, the EHR 503.
    smtp_server.fail(3, SMTP_451)
    webhook_receiver.status = 503
    red_flag_alerts(make_patient, make_procedure, clinician, 3)
    assert rows.count() == 6
    after_round(1, "mail server answered 451", "answered HTTP 503")

    # Round 2: the mail server takes the message but never answers end-of-DATA within EMAIL_TIMEOUT
    # (1 s): the outcome is unknown, so the page waits the long outcome-unknown wait, not the backoff.
    smtp_server.recorder.delay_seconds = 3
    due_now(rows)
    after_round(2, "mail server did not answer the end of the message", "answered HTTP 503")

    # Round 3: both recover.
    smtp_server.recorder.delay_seconds = 0
    webhook_receiver.status = 204
    accepted_from = len(webhook_receiver.requests)
    due_now(rows)
    wait_until(lambda: all(d.state == DeliveryState.SENT for d in rows.all()), timeout=60, message="every message sent")
    settled(lambda: len(smtp_server.messages), quiet_seconds=1, timeout=10, message="the SMTP server")

    pages = set(rows.filter(kind=DeliveryKind.ALERT).values_list("id", flat=True))
    assert delivery_ids_received(smtp_server) == dict.fromkeys(pages, 1), "a timed-out send was recorded as received"
    hooks = {f"msg_{pk}" for pk in rows.filter(kind=DeliveryKind.WEBHOOK).values_list("id", flat=True)}
    accepted = [r["headers"]["webhook-id"] for r in webhook_receiver.requests[accepted_from:]]
    assert sorted(accepted) == sorted(hooks), "each webhook answered 2xx exactly once"
    assert set(webhook_ids_received(webhook_receiver)) == hooks, "the webhook-id is stable across retries"
    assert all(d.attempts >= 3 and d.last_error == "" and d.sent_at for d in rows.all())


def test_backoff_doubles_to_the_600_s_cap_then_a_page_fails_for_good_and_a_webhook_lands_on_its_last_try(
    clinician, make_patient, make_procedure, endpoint, smtp_settings, webhook_receiver, settings, monkeypatch
):
    """Driven in this process, one attempt per due time: a page that never gets through (451, a timeout,
    451…) and a webhook that gets 503, a timeout, 503… and 204 on the last allowed attempt."""
    settings.EMAIL_TIMEOUT = 1
    settings.WEBHOOK_DEADLINE_SECONDS = 1
    # Webhooks may wait up to an hour between attempts (settings.WEBHOOK_BACKOFF_MAX_SECONDS, handed out
    # by the sweep); here they share the page's 600 s cap, to compare both against it.
    monkeypatch.setattr(outbox, "WEBHOOK_BACKOFF_MAX", BACKOFF_MAX_SECONDS)
    smtp_server = smtp_settings
    red_flag_alerts(make_patient, make_procedure, clinician, 1)
    page = Delivery.objects.get(kind=DeliveryKind.ALERT)
    hook = Delivery.objects.get(kind=DeliveryKind.WEBHOOK)
    waits = []

    for attempt in range(1, MAX_ATTEMPTS + 1):
        timeout = attempt == 2
        smtp_server.recorder.delay_seconds = 3 if timeout else 0
        smtp_server.fail(0 if timeout else 1, SMTP_451)
        webhook_receiver.delay_seconds = 1.5 if timeout else 0
        webhook_receiver.status = 204 if attempt == MAX_ATTEMPTS else 503
        for delivery in (page, hook):
            delivery.refresh_from_db()
            if attempt > 1:
                assert not Delivery.objects.ready(at=delivery.next_attempt_at - timedelta(seconds=1)).filter(
                    pk=delivery.pk
                ), "a sweep before the backoff ran out would retry early"
                assert Delivery.objects.ready(at=delivery.next_attempt_at).filter(pk=delivery.pk)
                assert deliver(delivery_id=delivery.pk).state == "skipped", "a retry before its time"
                Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())  # time passes
            outcome = deliver(delivery_id=delivery.pk)
            delivery.refresh_from_db()
            assert delivery.attempts == attempt
            if outcome.retry_in is not None:
                waits.append(outcome.retry_in)
                assert outcome.retry_in <= BACKOFF_MAX_SECONDS
                assert_backed_off(delivery)
                expected = "timed out after 1 s" if timeout else ("451" if delivery == page else "503")
                assert delivery != page or not timeout, "a page whose answer never came is not backed off"
                assert expected in delivery.last_error, (attempt, delivery.last_error)

    assert max(waits) > BACKOFF_MAX_SECONDS // 2, "the cap was never reached"
    page.refresh_from_db()
    hook.refresh_from_db()
    assert (page.state, page.attempts, page.last_error) == (DeliveryState.FAILED, 8, "mail server answered 451")
    assert (hook.state, hook.attempts, hook.last_error) == (DeliveryState.SENT, 8, "")
    # The page that failed for good hands the alert to the next escalation step at once.
    alert = Alert.objects.get()
    assert alert.next_escalation_at <= timezone.now()
    assert AlertEvent.objects.filter(alert=alert, kind=AlertEvent.Kind.DELIVERY_FAILED).count() == 1
    assert not smtp_server.messages
    # The EHR saw the timed-out POST too (it was received, only the answer came late): the same
    # webhook-id every time lets it deduplicate. (The receiver records that POST once its delay is over.)
    wait_until(lambda: len(webhook_receiver.requests) == MAX_ATTEMPTS, timeout=5, message="the late POST")
    assert webhook_ids_received(webhook_receiver) == {f"msg_{hook.pk}": MAX_ATTEMPTS}
