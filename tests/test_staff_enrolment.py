"""Enrolling an authenticator needs the password AND the single-use link e-mailed to the account:
someone who has only the password of a not-yet-enrolled account cannot enrol their own authenticator."""

import logging
import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from alerts.models import Delivery, DeliveryKind, DeliveryState
from alerts.outbox import deliver
from patients.models import EnrolmentLink
from patients.retention import purge_expired
from tests.builders import STAFF_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.hazard("HAZ-70")]

SETUP = "/admin/2fa/setup/"
ENROL_LINK = re.compile(r"https?://\S+?/admin/2fa/enrol/[A-Za-z0-9_-]+/")


@pytest.fixture(autouse=True)
def require_2fa(settings):
    settings.STAFF_REQUIRE_2FA = True


def code_for(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def signed_in(user) -> Client:
    browser = Client()
    response = browser.post(reverse("admin:login"), {"username": user.username, "password": STAFF_PASSWORD})
    assert response.status_code == 302, "the password is right"
    return browser


def mailed_link(user) -> str:
    """Send the pending enrolment mail and return the path of the link it carries to `user`."""
    for delivery in Delivery.objects.filter(kind=DeliveryKind.ENROLMENT, state=DeliveryState.PENDING):
        deliver(delivery_id=delivery.pk)
    [message] = [m for m in mail.outbox if m.to == [user.email]]
    [link] = ENROL_LINK.findall(message.body)
    return urlparse(link).path


def shows_a_key(response) -> bool:
    page = response.content.decode()
    return 'class="otp-qr"' in page or "Key: <code>" in page


def test_the_password_alone_shows_no_key_and_enrols_nothing(coordinator):
    """The attacker knows the password of an account that has no authenticator yet."""
    attacker = signed_in(coordinator)

    page = attacker.get(SETUP)
    posted = attacker.post(SETUP, {"token": "123456"})

    assert page.status_code == 200 and not shows_a_key(page) and "e-mailed" in page.content.decode()
    assert not shows_a_key(posted)
    assert not TOTPDevice.objects.filter(user=coordinator).exists(), "no key was made, so none can be confirmed"
    assert attacker.get(reverse("admin:index")).url == SETUP, "still nowhere but the set-up page"
    [delivery] = Delivery.objects.filter(kind=DeliveryKind.ENROLMENT)
    assert delivery.recipient == coordinator.email, "the link goes to the owner's mailbox, not to the browser"


def test_the_owner_enrols_with_the_emailed_link_and_the_password_holder_still_cannot(coordinator):
    attacker = signed_in(coordinator)
    attacker.get(SETUP)
    owner = signed_in(coordinator)
    path = mailed_link(coordinator)

    opened = owner.get(path)
    assert opened.status_code == 200 and not EnrolmentLink.objects.filter(used_at__isnull=False).exists(), (
        "opening the link (as a mail scanner would) does not use it up"
    )
    assert owner.post(path).url == SETUP
    setup = owner.get(SETUP)
    assert shows_a_key(setup)
    device = TOTPDevice.objects.get(user=coordinator, confirmed=False)

    assert not shows_a_key(attacker.get(SETUP)), "the proof belongs to the owner's browser only"
    attacker.post(SETUP, {"token": code_for(device)})
    device.refresh_from_db()
    assert not device.confirmed, "even with the code of the owner's key, the password holder's session enrols nothing"
    assert owner.post(SETUP, {"token": code_for(device)}).url == reverse("admin:index")
    assert owner.get(reverse("admin:index")).status_code == 200
    assert attacker.get(reverse("admin:index")).status_code == 302, "the attacker's session is no further on"


def test_a_wrong_code_enrols_nothing_and_the_session_stays_unverified(coordinator):
    owner = signed_in(coordinator)
    owner.get(SETUP)
    owner.post(mailed_link(coordinator))
    owner.get(SETUP)

    refused = owner.post(SETUP, {"token": "000000"})

    assert refused.status_code == 200 and "not right" in refused.content.decode() and shows_a_key(refused)
    assert not TOTPDevice.objects.get(user=coordinator).confirmed
    assert owner.get(reverse("admin:index")).url == SETUP


def test_a_link_opened_before_signing_in_leads_through_the_login_to_the_key(coordinator):
    signed_in(coordinator).get(SETUP)
    path = mailed_link(coordinator)
    browser = Client()

    pressed = browser.post(path)
    assert pressed.url.startswith(reverse("admin:login"))
    browser.post(reverse("admin:login"), {"username": coordinator.username, "password": STAFF_PASSWORD})

    assert shows_a_key(browser.get(SETUP))


def test_the_link_works_once(coordinator):
    signed_in(coordinator).get(SETUP)
    path = mailed_link(coordinator)
    first, second = signed_in(coordinator), signed_in(coordinator)

    assert first.post(path).status_code == 302
    again = second.post(path)

    assert again.status_code == 410 and "expired or has been used" in again.content.decode()
    assert not shows_a_key(second.get(SETUP))


def test_the_link_and_its_proof_expire(coordinator, settings):
    signed_in(coordinator).get(SETUP)
    late = mailed_link(coordinator)
    lifetime = timedelta(minutes=settings.STAFF_ENROLMENT_LINK_MINUTES)
    with time_machine.travel(timezone.now() + lifetime + timedelta(seconds=1)):
        assert Client().post(late).status_code == 410

    EnrolmentLink.objects.all().delete()
    mail.outbox.clear()
    Delivery.objects.all().delete()
    owner = signed_in(coordinator)
    owner.get(SETUP)
    owner.post(mailed_link(coordinator))
    assert shows_a_key(owner.get(SETUP))
    with time_machine.travel(timezone.now() + lifetime + timedelta(seconds=1)):
        assert not shows_a_key(owner.get(SETUP)), "a proven session may enrol only until the link's expiry"


def test_a_link_for_another_account_is_refused_and_not_used_up(coordinator, clinician):
    signed_in(coordinator).get(SETUP)
    path = mailed_link(coordinator)

    refused = signed_in(clinician).post(path)

    assert refused.status_code == 403
    assert not EnrolmentLink.objects.filter(used_at__isnull=False).exists()
    assert signed_in(coordinator).post(path).url == SETUP


def test_set_up_and_link_pages_are_never_stored_by_a_browser_or_proxy(coordinator):
    browser = signed_in(coordinator)
    before = browser.get(SETUP)
    path = mailed_link(coordinator)
    link_page = browser.get(path)
    browser.post(path)
    with_key = browser.get(SETUP)

    for response in (before, link_page, with_key, Client().get(path)):
        assert "no-store" in response["Cache-Control"]


def test_the_token_is_in_no_log_line_and_no_stored_row(coordinator, caplog):
    caplog.set_level(logging.DEBUG)
    browser = signed_in(coordinator)
    browser.get(SETUP)
    path = mailed_link(coordinator)
    browser.get(path)
    browser.post(path)
    browser.get(SETUP)
    token = path.rstrip("/").rsplit("/", 1)[-1]

    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    assert caplog.records and token not in logged
    stored = [repr(row) for row in Delivery.objects.values()] + [repr(r) for r in EnrolmentLink.objects.values()]
    assert token not in "".join(stored), "only its SHA-256 digest is kept"


def test_repeated_sign_ins_send_one_mail_per_link_lifetime(coordinator):
    for _ in range(5):
        signed_in(coordinator).get(SETUP)

    assert Delivery.objects.filter(kind=DeliveryKind.ENROLMENT).count() == 1


def test_an_account_without_an_email_address_is_told_to_ask_its_clinic_admin(coordinator):
    coordinator.email = ""
    coordinator.save(update_fields=["email"])

    page = signed_in(coordinator).get(SETUP).content.decode()

    assert "no e-mail address" in page and not Delivery.objects.exists()


def test_no_link_is_sent_once_the_account_is_enrolled_or_deactivated(coordinator):
    signed_in(coordinator).get(SETUP)
    TOTPDevice.objects.create(user=coordinator, name="phone", confirmed=True)

    [delivery] = Delivery.objects.filter(kind=DeliveryKind.ENROLMENT)
    assert deliver(delivery_id=delivery.pk).state == DeliveryState.CANCELLED
    assert not mail.outbox and not EnrolmentLink.objects.exists()


def test_the_retention_sweep_deletes_expired_links(coordinator):
    signed_in(coordinator).get(SETUP)
    mailed_link(coordinator)

    assert purge_expired(now=timezone.now()).enrolment_links == 0
    assert purge_expired(now=timezone.now() + timedelta(days=1)).enrolment_links == 1
