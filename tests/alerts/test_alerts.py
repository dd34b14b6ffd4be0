"""Alerts: deduplicated per patient and rule, re-paged only when the tier rises, escalated along the
clinic's chain until acknowledged, and announced to the EHR by signed webhooks."""

import base64
import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from alerts.escalation import acknowledge_alert, resolve_alert, sweep_escalations
from alerts.models import (
    Alert,
    AlertEvent,
    AlertState,
    Delivery,
    DeliveryKind,
    DeliveryState,
    EscalationPolicy,
    ReviewTask,
    WebhookEndpoint,
)
from alerts.outbox import MAX_ATTEMPTS, deliver
from alerts.reports import submit_report
from patients.models import Checkpoint, ClinicMembership, StaffRole
from tests.builders import make_staff

SECRET = "whsec_" + base64.b64encode(b"kyphofollow-test-secret-0123456789").decode()


@pytest.fixture
def on_call(clinic):
    user = make_staff(username="dr_oncall", clinic=clinic, role=StaffRole.CLINICIAN)
    ClinicMembership.objects.filter(user=user).update(on_call=True)
    return user


@pytest.fixture
def procedure(make_patient, make_procedure, clinician):
    patient = make_patient(responsible_clinician=clinician)
    return make_procedure(patient=patient, performed_on=timezone.localdate() - timedelta(days=5))


def report(procedure, pain=4, **answers):
    return submit_report(procedure=procedure, source="api", pain_now=pain, **answers)


def pages(alert) -> list[Delivery]:
    return list(Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).order_by("id"))


def deliver_all() -> None:
    """Each pending delivery, sent when it is due (a sweep run for a later `now` writes rows due then;
    the claim never takes a row before its `next_attempt_at`)."""
    for delivery in Delivery.objects.filter(state=DeliveryState.PENDING).order_by("id"):
        with time_machine.travel(max(timezone.now(), delivery.next_attempt_at), tick=True):
            deliver(delivery_id=delivery.pk)


@pytest.mark.django_db
def test_a_red_flag_pages_the_responsible_clinician_at_once_with_a_neutral_subject(procedure, clinician):
    report(procedure, red_flags=["RF-01"])
    deliver_all()

    alert = Alert.objects.get()
    assert (alert.code, alert.tier, alert.state, alert.count) == ("RF-01", "emergency", "open", 1)
    [message] = mail.outbox
    assert message.to == [clinician.email]
    assert message.subject == "EMERGENCY: a patient needs review now"
    patient = procedure.patient
    for secret in (patient.given_name, patient.family_name, patient.mrn):
        assert secret not in message.subject
    assert "/ack/" in message.body


@pytest.mark.django_db
def test_second_report_of_same_red_flag_updates_open_alert_without_paging_again(procedure):
    report(procedure, red_flags=["RF-06"])
    report(procedure, red_flags=["RF-06"])

    alert = Alert.objects.get()
    assert alert.count == 2
    assert len(pages(alert)) == 1
    assert list(alert.events.values_list("kind", flat=True)) == ["raised", "notified", "repeated"]


@pytest.mark.hazard("HAZ-05")
@pytest.mark.django_db
def test_a_higher_tier_for_the_same_rule_pages_again_even_after_acknowledgement(procedure, clinician):
    """As when a newer protocol version puts a rule in a higher tier than the alert was raised at."""
    first = report(procedure, red_flags=["RF-07"])
    alert = Alert.objects.get()
    acknowledge_alert(alert=alert, by=clinician, via="admin")
    Alert.objects.filter(pk=alert.pk).update(tier="routine")  # as if raised under a lower tier

    report(procedure, red_flags=["RF-07"])

    alert.refresh_from_db()
    assert first.findings[0]["tier"] == "urgent"
    assert (alert.tier, alert.state, alert.count) == ("urgent", AlertState.OPEN, 2)
    assert len(pages(alert)) == 2
    assert alert.events.filter(kind=AlertEvent.Kind.TIER_RAISED).exists()


@pytest.mark.hazard("HAZ-07", "HAZ-45")
@pytest.mark.django_db
def test_unacknowledged_emergency_escalates_along_the_chain_then_repeats_its_last_step(
    procedure, clinician, coordinator, on_call
):
    report(procedure, red_flags=["RF-02"])
    alert = Alert.objects.get()
    start = alert.policy_started_at

    assert sweep_escalations(now=start + timedelta(minutes=9)) == 0
    assert sweep_escalations(now=start + timedelta(minutes=10)) == 1
    assert sweep_escalations(now=start + timedelta(minutes=20)) == 1
    assert sweep_escalations(now=start + timedelta(minutes=29)) == 0

    recipients = [page.recipient for page in pages(alert)]
    assert recipients == [clinician.email, coordinator.email, on_call.email]
    alert.refresh_from_db()
    assert (alert.level, alert.repeats, alert.next_escalation_at) == (2, 0, start + timedelta(minutes=30))


@pytest.mark.django_db
def test_an_alert_keeps_the_policy_it_was_raised_under(procedure, clinic, coordinator):
    report(procedure, red_flags=["RF-01"])
    EscalationPolicy.objects.create(
        clinic=clinic,
        tier="emergency",
        steps=[{"after_minutes": 0, "notify": "coordinators"}, {"after_minutes": 1, "notify": "on_call"}],
    )
    alert = Alert.objects.get()

    assert sweep_escalations(now=alert.policy_started_at + timedelta(minutes=5)) == 0
    assert alert.policy[1] == {"after_minutes": 10, "notify": "coordinators"}


@pytest.mark.django_db
def test_acknowledging_stops_escalation_and_cancels_pages_not_yet_sent(procedure, clinician, coordinator):
    report(procedure, red_flags=["RF-03"])
    alert = Alert.objects.get()
    sweep_escalations(now=alert.policy_started_at + timedelta(minutes=10))

    acknowledge_alert(alert=alert, by=clinician, via="admin", note="seen, calling patient")
    deliver_all()

    assert [page.state for page in pages(alert)] == [DeliveryState.CANCELLED, DeliveryState.CANCELLED]
    assert mail.outbox == []
    assert sweep_escalations(now=alert.policy_started_at + timedelta(hours=1)) == 0
    with pytest.raises(Exception, match="already acknowledged"):
        acknowledge_alert(alert=alert, by=clinician, via="admin")


@pytest.mark.hazard("HAZ-13")
@pytest.mark.django_db
def test_a_page_failing_past_its_retries_hands_the_alert_to_the_next_step_and_shows_the_failure(procedure, coordinator):
    report(procedure, red_flags=["RF-04"])
    alert = Alert.objects.get()
    [page] = pages(alert)
    Delivery.objects.filter(pk=page.pk).update(attempts=MAX_ATTEMPTS - 1, recipient="nobody@invalid")

    from django.test import override_settings

    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_PORT=1):
        outcome = deliver(delivery_id=page.pk)

    assert outcome.state == DeliveryState.FAILED
    assert alert.events.filter(kind=AlertEvent.Kind.DELIVERY_FAILED).exists()
    assert sweep_escalations(now=timezone.now()) == 1
    assert pages(alert)[-1].recipient == coordinator.email


@pytest.mark.django_db
def test_resolving_needs_a_note_and_closes_the_alert_so_a_new_report_opens_a_new_one(procedure, clinician):
    report(procedure, red_flags=["RF-08"])
    alert = Alert.objects.get()

    with pytest.raises(Exception, match="Say how the alert was resolved"):
        resolve_alert(alert=alert, by=clinician, reason="managed", note=" ")
    resolve_alert(alert=alert, by=clinician, reason="managed", note="wound checked, antibiotics started")
    report(procedure, red_flags=["RF-08"])

    assert Alert.objects.filter(code="RF-08").count() == 2


@pytest.mark.django_db
def test_second_opinion_answers_and_stalled_pain_make_review_tasks_not_pages(make_patient, make_procedure):
    procedure = make_procedure(
        patient=make_patient(),
        performed_on=timezone.localdate() - timedelta(days=45),
        baseline_pain=7,
        fracture_diagnosed_on=timezone.localdate() - timedelta(days=50),
    )

    report(procedure, pain=6, second_opinion={"SO-2": "no", "SO-4": "yes"})

    assert set(ReviewTask.objects.values_list("code", flat=True)) == {"SO-2", "SO-4", "PAIN_NOT_IMPROVING"}
    assert not Alert.objects.exists()
    assert not Delivery.objects.filter(kind=DeliveryKind.ALERT).exists()


@pytest.mark.django_db
def test_imaging_red_flags_plan_an_imaging_review(procedure):
    report(procedure, red_flags=["RF-09"])
    report(procedure, red_flags=["RF-06"])

    [review] = Checkpoint.objects.filter(procedure=procedure, code="CP-16")
    assert review.triggered and review.is_open


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({"pain": 11}, "pain_now"),
        ({"pain": -1}, "pain_now"),
        ({"red_flags": ["RF-99"]}, "red_flags"),
        ({"second_opinion": {"SO-9": "no"}}, "second_opinion"),
        ({"second_opinion": {"SO-2": "maybe"}}, "second_opinion"),
        ({"reported_at": timezone.now() + timedelta(days=2)}, "reported_at"),
    ],
)
def test_bad_report_is_refused_by_field_and_nothing_is_saved(procedure, answers, field):
    from django.core.exceptions import ValidationError

    from alerts.models import SymptomReport

    pain = answers.pop("pain", 4)
    with pytest.raises(ValidationError) as excinfo:
        report(procedure, pain=pain, **answers)

    assert field in excinfo.value.message_dict
    assert not SymptomReport.objects.exists()
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_the_ehr_gets_signed_webhooks_for_raise_and_acknowledge_that_verify(
    procedure, clinic, clinician, webhook_receiver
):
    WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)
    report(procedure, red_flags=["RF-05"])
    alert = Alert.objects.get()
    acknowledge_alert(alert=alert, by=clinician, via="admin")
    deliver_all()

    events = []
    for request in webhook_receiver.requests:
        payload = Webhook(SECRET).verify(request["body"], request["headers"])
        events.append(payload["type"])
        assert payload["data"]["alert"] == alert.pk
        assert request["headers"]["webhook-id"].startswith("msg_")
        for secret in (procedure.patient.family_name, procedure.patient.mrn):
            assert secret not in json.dumps(request["headers"]) and secret.encode() not in request["body"]
    assert events == ["alert.raised", "alert.acknowledged"]
    tampered = dict(webhook_receiver.requests[0]["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(webhook_receiver.requests[0]["body"] + b" ", tampered)


@pytest.mark.django_db
def test_a_failing_ehr_endpoint_is_retried_then_marked_failed_on_a_client_error(procedure, clinic, webhook_receiver):
    WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)
    report(procedure, red_flags=["RF-05"])
    hook = Delivery.objects.get(kind=DeliveryKind.WEBHOOK)

    webhook_receiver.status = 503
    assert deliver(delivery_id=hook.pk).state == DeliveryState.PENDING
    webhook_receiver.status = 200
    assert deliver(delivery_id=hook.pk).state == "skipped", "not before its backoff has run out"
    hook.refresh_from_db()
    with time_machine.travel(hook.next_attempt_at, tick=True):
        assert deliver(delivery_id=hook.pk).state == DeliveryState.SENT

    report(procedure, red_flags=["RF-02"])
    second = Delivery.objects.filter(kind=DeliveryKind.WEBHOOK).latest("id")
    webhook_receiver.status = 410
    assert deliver(delivery_id=second.pk).state == DeliveryState.FAILED


@pytest.mark.django_db(transaction=True)
def test_an_acknowledgement_racing_a_page_in_flight_commits_only_after_that_page_arrived(
    procedure, clinician, coordinator, smtp_settings
):
    """The escalation page is on the wire (the SMTP server holds it for 0.3 s) when the clinician
    acknowledges. The acknowledgement waits for the send, so no page arrives after it committed;
    and the sweep after it sends nothing more."""
    report(procedure, red_flags=["RF-01"])
    alert = Alert.objects.get()
    Delivery.objects.update(state=DeliveryState.SENT)  # the first page went out earlier
    sweep_escalations(now=alert.policy_started_at + timedelta(minutes=10))
    [escalation] = Delivery.objects.filter(state=DeliveryState.PENDING)
    smtp_settings.recorder.delay_seconds = 0.3
    acknowledged = {}

    def acknowledge_when_the_page_is_on_the_wire():
        smtp_settings.recorder.receiving.wait(timeout=10)
        acknowledge_alert(alert=alert, by=clinician, via="admin")
        acknowledged["at"] = time.time()  # acknowledge_alert is its own transaction: committed here
        connection.close()

    racer = threading.Thread(target=acknowledge_when_the_page_is_on_the_wire)
    racer.start()
    outcome = deliver(delivery_id=escalation.pk, now=max(timezone.now(), escalation.next_attempt_at))
    racer.join()

    assert outcome.state == DeliveryState.SENT
    [arrival] = smtp_settings.recorder.arrival_times
    assert arrival <= acknowledged["at"], "the page arrived after the acknowledgement had committed"
    assert sweep_escalations(now=alert.policy_started_at + timedelta(minutes=30)) == 0


@pytest.mark.django_db
def test_checkpoint_transitions_reach_the_ehr_once_each_as_signed_webhooks(procedure, clinic, webhook_receiver):
    from alerts.webhooks import sweep_checkpoint_webhooks
    from patients.services import cancel_checkpoint

    WebhookEndpoint.objects.create(
        clinic=clinic, url=webhook_receiver.url, secret=SECRET, events=["checkpoint.cancelled"]
    )
    checkpoint = Checkpoint.objects.filter(procedure=procedure, code="CP-10").get()
    cancel_checkpoint(checkpoint=checkpoint, reason="patient moved away")

    assert sweep_checkpoint_webhooks(now=timezone.now()) == 1
    assert sweep_checkpoint_webhooks(now=timezone.now()) == 0
    deliver_all()

    [request] = webhook_receiver.requests
    payload = Webhook(SECRET).verify(request["body"], request["headers"])
    assert payload["type"] == "checkpoint.cancelled"
    assert payload["data"]["checkpoint"] == checkpoint.pk and payload["data"]["state"] == "cancelled"
