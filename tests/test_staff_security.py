"""Staff security: two-factor sign-in (enrolling: test_staff_enrolment.py), lockout after failed logins
(per address: test_staff_lockout.py), idle logoff, headers and CSP."""

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


@pytest.fixture
def require_2fa(settings):
    settings.STAFF_REQUIRE_2FA = True


def code_for(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def sign_in(client, user, **extra):
    return client.post(reverse("admin:login"), {"username": user.username, "password": PASSWORD, **extra})


def test_first_sign_in_goes_to_authenticator_enrolment_and_nowhere_else(client, coordinator, require_2fa):
    sign_in(client, coordinator)

    assert client.get(reverse("admin:index")).url == reverse("admin:otp-setup")
    assert client.get(reverse("admin:patients_patient_changelist")).url == reverse("admin:otp-setup")
    page = client.get(reverse("admin:otp-setup")).content.decode()
    assert "authenticator" in page and "e-mailed" in page, "enrolling needs the e-mailed link too"


def test_an_enrolled_user_needs_the_code_at_sign_in(client, coordinator, require_2fa):
    device = TOTPDevice.objects.create(user=coordinator, name="phone", confirmed=True)

    without = sign_in(client, coordinator)
    assert without.status_code == 200 and "OTP token" in without.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302

    sign_in(client, coordinator, otp_device=device.persistent_id, otp_token=code_for(device))
    assert client.get(reverse("admin:index")).status_code == 200


def test_an_unverified_session_cannot_use_the_api(client, coordinator, require_2fa):
    sign_in(client, coordinator)

    assert client.get("/api/v1/patients/").status_code == 403


def test_repeated_failed_logins_lock_the_account(client, coordinator, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("admin:login"), {"username": coordinator.username, "password": "wrong-password"})

    locked = sign_in(client, coordinator)

    assert locked.status_code == 429
    assert "Account locked" in locked.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302


def test_staff_sessions_expire_when_idle(settings):
    assert settings.SESSION_COOKIE_AGE <= 3600 and settings.SESSION_SAVE_EVERY_REQUEST


def test_pages_carry_security_headers_and_a_content_security_policy(client):
    response = client.get(reverse("admin:login"))

    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_weak_passwords_are_refused():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    for weak in ("password123", "12345678901234", "short1!"):
        with pytest.raises(ValidationError):
            validate_password(weak)
