"""The one-click acknowledge link in a clinician's alert e-mail: a GET only shows a button, a POST
acknowledges once, and a link is bound to one alert and expires."""

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client

from alerts.escalation import sweep_escalations
from alerts.models import AcknowledgeLink, Alert, AlertEvent, AlertState, Delivery, DeliveryKind, DeliveryState
from alerts.outbox import deliver
from alerts.reports import submit_report
from patients.protocol import get_protocol
from tests.builders import PERFORMED_ON, link_path

ACK_LINK = re.compile(r"https?://\S+?/ack/[A-Za-z0-9_-]+/")


@dataclass
class Page:
    alert: Alert
    path: str  # /ack/<token>/
    message: mail.EmailMessage


@pytest.fixture
def page_clinician(clock, make_patient, make_procedure, clinician):
    """Raise an alert for a patient of `clinician`, send the page, and read the link from it."""

    def page(code="RF-01") -> Page:
        patient = make_patient(responsible_clinician=clinician)
        procedure = make_procedure(patient=patient, performed_on=PERFORMED_ON)
        submit_report(procedure=procedure, source="api", pain_now=3, red_flags=[code])
        alert = Alert.objects.get(patient=patient, code=code)
        delivery = Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT)
        deliver(delivery_id=delivery.pk)
        message = mail.outbox[-1]
        return Page(alert=alert, path=link_path(message.body, ACK_LINK), message=message)

    return page


def post_with_csrf(client: Client, path: str, **data):
    """What the clinician's browser does: load the page, then press its button."""
    form = client.get(path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode()).group(1)
    return client.post(path, {"csrfmiddlewaretoken": token, **data})


def fresh(alert: Alert) -> Alert:
    return Alert.objects.get(pk=alert.pk)


@pytest.mark.django_db
def test_the_alert_email_to_the_clinician_carries_an_acknowledge_link_made_for_them(page_clinician, clinician):
    page = page_clinician()

    assert page.message.to == [clinician.email]
    assert re.fullmatch(r"/ack/[A-Za-z0-9_-]+/", page.path)
    [link] = AcknowledgeLink.objects.all()
    assert (link.alert, link.user) == (page.alert, clinician)


@pytest.mark.hazard("HAZ-06")
@pytest.mark.django_db
def test_opening_the_link_shows_a_button_and_changes_nothing(client, page_clinician):
    page = page_clinician()
    before = fresh(page.alert)

    response = client.get(page.path)

    assert response.status_code == 200
    content = response.content.decode()
    assert re.search(r'<form method="post">.*<button type="submit"', content, flags=re.S)
    after = fresh(page.alert)
    assert after.state == AlertState.OPEN
    assert after.acknowledged_at is None and after.acknowledged_by is None
    assert after.next_escalation_at == before.next_escalation_at is not None
    assert AcknowledgeLink.objects.get().used_at is None
    assert not AlertEvent.objects.filter(kind=AlertEvent.Kind.ACKNOWLEDGED).exists()


@pytest.mark.django_db
def test_pressing_the_button_acknowledges_as_the_clinician_and_stops_escalation(page_clinician, clinician):
    page = page_clinician()

    response = post_with_csrf(Client(enforce_csrf_checks=True), page.path, note="Seen, calling the patient")

    assert response.status_code == 200
    assert "Acknowledged" in response.content.decode()
    alert = fresh(page.alert)
    assert alert.state == AlertState.ACKNOWLEDGED
    assert alert.acknowledged_by == clinician
    assert alert.acknowledged_via == "e-mail link"
    assert alert.acknowledge_note == "Seen, calling the patient"
    assert alert.next_escalation_at is None
    [event] = AlertEvent.objects.filter(alert=alert, kind=AlertEvent.Kind.ACKNOWLEDGED)
    assert event.by == clinician


@pytest.mark.django_db
def test_the_same_link_again_answers_410_and_acknowledges_nothing_twice(client, page_clinician):
    page = page_clinician()
    assert client.post(page.path).status_code == 200

    opened = Client().get(page.path)
    posted = Client().post(page.path)

    assert (opened.status_code, posted.status_code) == (410, 410)
    assert "Nothing to acknowledge" in posted.content.decode()
    assert AlertEvent.objects.filter(kind=AlertEvent.Kind.ACKNOWLEDGED).count() == 1


@pytest.mark.django_db
def test_a_forged_token_answers_404(client, page_clinician):
    page = page_clinician()

    for response in (client.get("/ack/forged-0123456789abcdefghijklmnop/"), client.post("/ack/forged-0123/")):
        assert response.status_code == 404
        assert "This link does not work" in response.content.decode()
    assert fresh(page.alert).state == AlertState.OPEN


@pytest.mark.django_db
def test_a_link_issued_for_one_alert_cannot_acknowledge_another(client, page_clinician):
    first, second = page_clinician("RF-01"), page_clinician("RF-02")
    untouched = fresh(second.alert)

    response = client.post(first.path, {"alert": second.alert.pk, "alert_id": second.alert.pk})

    assert response.status_code == 200
    assert fresh(first.alert).state == AlertState.ACKNOWLEDGED
    later = fresh(second.alert)
    assert later.state == AlertState.OPEN
    assert later.next_escalation_at == untouched.next_escalation_at
    assert not AlertEvent.objects.filter(alert=second.alert, kind=AlertEvent.Kind.ACKNOWLEDGED).exists()


@pytest.mark.django_db
def test_a_link_expires_after_24_hours(client, page_clinician, clock):
    page = page_clinician()
    valid = get_protocol(page.alert.protocol_version).link_lifetime("acknowledge")
    assert valid == timedelta(hours=24)

    clock.shift(valid - timedelta(seconds=1))
    assert client.get(page.path).status_code == 200
    clock.shift(timedelta(seconds=2))
    opened, posted = client.get(page.path), client.post(page.path)

    assert (opened.status_code, posted.status_code) == (410, 410)
    assert "expired" in posted.content.decode()
    assert fresh(page.alert).state == AlertState.OPEN


@pytest.mark.django_db
def test_after_acknowledgement_pages_not_yet_sent_are_cancelled_not_sent(client, page_clinician, coordinator, clock):
    page = page_clinician()
    clock.shift(timedelta(minutes=10))
    sweep_escalations(now=page.alert.first_seen_at + timedelta(minutes=10))  # the coordinators' step
    [pending] = Delivery.objects.filter(alert=page.alert, kind=DeliveryKind.ALERT, recipient_user=coordinator)
    sent_before = len(mail.outbox)

    assert client.post(page.path).status_code == 200
    outcome = deliver(delivery_id=pending.pk)

    assert outcome.state == DeliveryState.CANCELLED
    assert Delivery.objects.get(pk=pending.pk).state == DeliveryState.CANCELLED
    assert len(mail.outbox) == sent_before
