"""Webhooks faithful to the event: the body (event time, the state of that moment, a per-alert
sequence) is frozen when the event happens, so every attempt sends the same bytes under the same
`webhook-id`; every non-2xx answer is retried until the horizon, except 410 Gone, which disables the
endpoint; a new endpoint gets no backlog; the send happens outside any transaction."""

import base64
import json
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone
from standardwebhooks import Webhook

from alerts.escalation import acknowledge_alert
from alerts.models import Alert, AlertEvent, Delivery, DeliveryKind, DeliveryState, WebhookEndpoint
from alerts.outbox import WEBHOOK_RETRY_HORIZON, deliver
from alerts.reports import submit_report
from alerts.webhooks import sweep_checkpoint_webhooks
from patients.models import Checkpoint, StaffRole
from patients.services.checkpoints import cancel_checkpoint
from tests.builders import make_staff

SECRET = "whsec_" + base64.b64encode(b"kyphofollow-faithful-secret-012345").decode()


@pytest.fixture
def procedure(make_patient, make_procedure, clinician):
    patient = make_patient(responsible_clinician=clinician)
    return make_procedure(patient=patient, performed_on=timezone.localdate() - timedelta(days=5))


@pytest.fixture
def endpoint(clinic, webhook_receiver):
    return WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)


def hooks():
    return Delivery.objects.filter(kind=DeliveryKind.WEBHOOK).order_by("id")


def due_and_delivered() -> None:
    """Every pending webhook's backoff runs out and it is sent."""
    for hook in hooks().filter(state=DeliveryState.PENDING):
        Delivery.objects.filter(pk=hook.pk).update(next_attempt_at=timezone.now())
        deliver(delivery_id=hook.pk)


@pytest.mark.hazard("HAZ-49")
@pytest.mark.django_db
def test_a_receiver_answering_401_then_307_then_200_gets_each_event_once_with_identical_bodies(
    procedure, clinician, endpoint, webhook_receiver
):
    webhook_receiver.statuses = [401, 307]
    webhook_receiver.status = 200
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    alert = Alert.objects.get()
    [raised] = hooks()
    assert deliver(delivery_id=raised.pk).state == DeliveryState.PENDING  # 401
    acknowledge_alert(alert=alert, by=clinician, via="admin")  # before the raised event got through
    acknowledged = hooks().last()
    assert deliver(delivery_id=acknowledged.pk).state == DeliveryState.PENDING  # 307
    due_and_delivered()

    assert set(hooks().values_list("state", flat=True)) == {DeliveryState.SENT}
    by_id: dict[str, list[bytes]] = {}
    for request in webhook_receiver.requests:
        Webhook(SECRET).verify(request["body"], request["headers"])
        by_id.setdefault(request["headers"]["webhook-id"], []).append(request["body"])
    assert by_id.keys() == {f"msg_{raised.pk}", f"msg_{acknowledged.pk}"}
    for bodies in by_id.values():
        assert len(bodies) == 2 and bodies[0] == bodies[1], "a retry sent other bytes"
    accepted = [r["headers"]["webhook-id"] for r in webhook_receiver.requests[2:]]  # the 2xx answers
    assert sorted(accepted) == sorted(by_id), "each event accepted exactly once"

    first, second = (json.loads(by_id[f"msg_{hook.pk}"][0]) for hook in (raised, acknowledged))
    events = {e.kind: e for e in AlertEvent.objects.filter(alert=alert)}
    assert (first["type"], first["data"]["state"]) == ("alert.raised", "open"), "the state when it was raised"
    assert (second["type"], second["data"]["state"]) == ("alert.acknowledged", "acknowledged")
    assert first["timestamp"] == events[AlertEvent.Kind.RAISED].at.isoformat()
    assert second["timestamp"] == events[AlertEvent.Kind.ACKNOWLEDGED].at.isoformat()
    assert first["data"]["sequence"] < second["data"]["sequence"], "the receiver can order them"


@pytest.mark.django_db
def test_two_events_of_one_alert_carry_increasing_sequence_numbers_whatever_order_they_arrive_in(
    procedure, clinician, endpoint, webhook_receiver
):
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    acknowledge_alert(alert=Alert.objects.get(), by=clinician, via="admin")
    raised, acknowledged = hooks()
    deliver(delivery_id=acknowledged.pk)  # arrives first
    deliver(delivery_id=raised.pk)

    payloads = [json.loads(r["body"]) for r in webhook_receiver.requests]
    assert [p["type"] for p in payloads] == ["alert.acknowledged", "alert.raised"]
    latest = max(payloads, key=lambda p: p["data"]["sequence"])
    assert latest["data"]["state"] == "acknowledged", "applying by sequence leaves the true state"


@pytest.mark.hazard("HAZ-49")
@pytest.mark.django_db
def test_410_gone_disables_the_endpoint_and_says_why(
    procedure, make_procedure, clinic, clinician, endpoint, webhook_receiver, client
):
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    acknowledge_alert(alert=Alert.objects.get(), by=clinician, via="admin")
    gone, queued = hooks()
    webhook_receiver.status = 410

    assert deliver(delivery_id=gone.pk).state == DeliveryState.FAILED
    assert deliver(delivery_id=queued.pk).state == DeliveryState.CANCELLED, "nothing more goes to it"

    endpoint.refresh_from_db()
    assert not endpoint.active and endpoint.disabled_at
    assert endpoint.disabled_reason == f"delivery #{gone.pk}: answered HTTP 410 Gone: endpoint disabled"
    queued.refresh_from_db()
    assert queued.last_error == f"endpoint disabled: {endpoint.disabled_reason}"
    assert len(webhook_receiver.requests) == 1
    other = make_procedure(performed_on=timezone.localdate() - timedelta(days=2))
    submit_report(procedure=other, source="api", pain_now=7, red_flags=["RF-02"])
    assert hooks().count() == 2, "a disabled endpoint gets no new events"

    client.force_login(make_staff(username="ada", clinic=clinic, role=StaffRole.CLINIC_ADMIN))
    page = client.get("/admin/alerts/webhookendpoint/").content.decode()
    assert "answered HTTP 410 Gone" in page

    endpoint.active = True  # a clinic admin turns it on again: the reason is cleared, history keeps it
    endpoint.save()
    endpoint.refresh_from_db()
    assert endpoint.disabled_reason == "" and endpoint.history.filter(disabled_reason__contains="410").exists()


@pytest.mark.django_db
def test_the_admin_refuses_an_internal_address_with_a_field_error(clinic, client, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    client.force_login(make_staff(username="ada", clinic=clinic, role=StaffRole.CLINIC_ADMIN))
    form = {"clinic": clinic.pk, "url": "https://169.254.169.254/latest/", "secret": SECRET, "events": "[]"}

    answer = client.post("/admin/alerts/webhookendpoint/add/", {**form, "active": "on"})

    assert answer.status_code == 200
    assert "This address cannot receive webhooks: address not allowed: link-local." in answer.content.decode()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.hazard("HAZ-49")
@pytest.mark.django_db
def test_a_new_endpoint_gets_no_backlog(procedure, clinic, webhook_receiver):
    first, second = Checkpoint.objects.filter(procedure=procedure).order_by("target_date")[:2]
    cancel_checkpoint(checkpoint=first, by=None, reason="before the endpoint existed")
    WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)

    assert sweep_checkpoint_webhooks(now=timezone.now()) == 0, "the history before it was made is not sent"
    cancel_checkpoint(checkpoint=second, by=None, reason="after")
    assert sweep_checkpoint_webhooks(now=timezone.now()) == 1

    [hook] = hooks()
    deliver(delivery_id=hook.pk)
    [request] = webhook_receiver.requests
    payload = json.loads(request["body"])
    assert (payload["type"], payload["data"]["checkpoint"], payload["data"]["state"]) == (
        "checkpoint.cancelled",
        second.pk,
        "cancelled",
    )


@pytest.mark.hazard("HAZ-49")
@pytest.mark.django_db
def test_a_failing_webhook_is_retried_until_the_horizon_then_fails_for_good(procedure, endpoint, webhook_receiver):
    """404 is retried like any failure, with waits past the broker's countdown limit handed out by the
    sweep, and the last attempt is at the horizon (24 h after the event)."""
    webhook_receiver.status = 404
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    [hook] = hooks()
    horizon = hook.created_at + WEBHOOK_RETRY_HORIZON
    waits = []
    for _ in range(60):
        hook.refresh_from_db()
        if hook.state != DeliveryState.PENDING:
            break
        with time_machine.travel(hook.next_attempt_at, tick=False):
            outcome = deliver(delivery_id=hook.pk)
        hook.refresh_from_db()
        if outcome.state == DeliveryState.PENDING:
            wait = (hook.next_attempt_at - hook.updated_at).total_seconds()
            waits.append(wait)
            assert hook.next_attempt_at <= horizon
            # No countdown task past the broker's limit: the sweep hands the row out when it is due.
            assert (outcome.retry_in is None and hook.enqueued_at is None) == (wait > 600), wait

    assert hook.state == DeliveryState.FAILED and hook.last_error == "answered HTTP 404"
    assert max(waits) > 600, "long waits are allowed (the sweep hands them out)"
    assert max(waits) <= 3600 + 1
    assert hook.updated_at >= horizon
    assert len({r["body"] for r in webhook_receiver.requests}) == 1
    assert len(webhook_receiver.requests) == hook.attempts


@pytest.mark.django_db(transaction=True)
def test_the_post_is_made_outside_any_transaction_after_the_claim_committed(procedure, endpoint, webhook_receiver):
    """While the receiver holds the POST, another connection sees the claim committed and can lock the
    delivery and alert rows at once: the sending worker holds no transaction or lock during the send."""
    seen = {}

    def during_post(headers, body):
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SET lock_timeout = '500ms'")
                cursor.execute("BEGIN")
                cursor.execute("SELECT state FROM alerts_delivery WHERE id = %s FOR UPDATE", [hook.pk])
                seen["state"] = cursor.fetchone()[0]
                cursor.execute("SELECT id FROM alerts_alert WHERE id = %s FOR UPDATE", [hook.alert_id])
                seen["alert_locked_by_us"] = cursor.fetchone() is not None
                cursor.execute("ROLLBACK")
        finally:
            other.close()

    webhook_receiver.on_request = during_post
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    [hook] = hooks()
    assert not connection.in_atomic_block
    assert deliver(delivery_id=hook.pk).state == DeliveryState.SENT
    assert seen == {"state": DeliveryState.SENDING, "alert_locked_by_us": True}


@pytest.mark.django_db
def test_a_row_written_before_bodies_were_frozen_gets_one_body_kept_for_its_retries(
    procedure, clinician, endpoint, webhook_receiver
):
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    [hook] = hooks()
    context = {k: v for k, v in hook.context.items() if k != "body"}
    Delivery.objects.filter(pk=hook.pk).update(context=context)
    webhook_receiver.statuses = [503]

    deliver(delivery_id=hook.pk)
    acknowledge_alert(alert=Alert.objects.get(), by=clinician, via="admin")
    due_and_delivered()

    first, again = (r["body"] for r in webhook_receiver.requests if r["headers"]["webhook-id"] == f"msg_{hook.pk}")
    assert first == again
    assert json.loads(first)["data"]["state"] == "open"
