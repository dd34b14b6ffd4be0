"""Failed-login lockout (django-axes) is per (user name, client address), and the client address is one
an attacker cannot choose: REMOTE_ADDR with no proxy, the proxy-appended X-Forwarded-For entry behind
TRUSTED_PROXY_COUNT proxies. So failing someone's password from elsewhere never locks them out."""

import logging

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from tests.builders import STAFF_PASSWORD

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"  # the reverse proxy: every request behind it comes from this address
USER_AT = "203.0.113.10"
ATTACKER_AT = "198.51.100.66"


def sign_in(browser: Client, user, password: str = STAFF_PASSWORD, **headers) -> int:
    data = {"username": user.username, "password": password}
    return browser.post(reverse("admin:login"), data, **headers).status_code


def fail_many_times(browser: Client, user, settings, **headers) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        sign_in(browser, user, password="not-the-password", **headers)


@pytest.mark.hazard("HAZ-71")
def test_an_attacker_failing_from_another_address_never_locks_the_user_out(coordinator, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    attacker = Client(REMOTE_ADDR=ATTACKER_AT)

    fail_many_times(attacker, coordinator, settings)

    assert sign_in(attacker, coordinator) == 429, "the attacker's own address is locked for this user"
    assert sign_in(Client(REMOTE_ADDR=USER_AT), coordinator) == 302, "the user signs in from theirs"


@pytest.mark.hazard("HAZ-71")
def test_behind_a_proxy_a_forged_forwarded_for_cannot_choose_the_locked_address(coordinator, settings):
    """The attacker puts the user's address (and junk) on the left; the proxy appends the real one."""
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = Client(REMOTE_ADDR=PROXY)
    for forged in (USER_AT, f"{USER_AT}, 192.0.2.1", "unknown", "127.0.0.1"):
        fail_many_times(attacker, coordinator, settings, HTTP_X_FORWARDED_FOR=f"{forged}, {ATTACKER_AT}")

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER_AT}
    assert sign_in(Client(REMOTE_ADDR=PROXY), coordinator, HTTP_X_FORWARDED_FOR=USER_AT) == 302
    assert sign_in(attacker, coordinator, HTTP_X_FORWARDED_FOR=f"{USER_AT}, {ATTACKER_AT}") == 429


@pytest.mark.hazard("HAZ-71")
def test_behind_a_proxy_the_real_forwarded_address_is_locked_and_no_other(coordinator, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    user = Client(REMOTE_ADDR=PROXY)

    fail_many_times(user, coordinator, settings, HTTP_X_FORWARDED_FOR=USER_AT)

    assert sign_in(user, coordinator, HTTP_X_FORWARDED_FOR=USER_AT) == 429
    assert sign_in(Client(REMOTE_ADDR=PROXY), coordinator, HTTP_X_FORWARDED_FOR="203.0.113.11") == 302, (
        "the same user from another address (the same proxy) is not locked"
    )


def test_two_proxies_take_the_second_entry_from_the_right(coordinator, settings):
    settings.TRUSTED_PROXY_COUNT = 2
    attacker = Client(REMOTE_ADDR=PROXY)

    fail_many_times(attacker, coordinator, settings, HTTP_X_FORWARDED_FOR=f"{USER_AT}, {ATTACKER_AT}, 10.0.0.7")

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER_AT}


def test_without_a_proxy_the_forwarded_header_is_ignored(coordinator, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    attacker = Client(REMOTE_ADDR=ATTACKER_AT)

    fail_many_times(attacker, coordinator, settings, HTTP_X_FORWARDED_FOR=USER_AT)

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER_AT}
    assert sign_in(Client(REMOTE_ADDR=USER_AT), coordinator) == 302


def test_start_up_does_not_log_the_lockout_banner(monkeypatch, caplog):
    """Every manage.py command and worker start runs this; the banner would be noise in each one."""
    from axes.apps import AppConfig

    monkeypatch.setattr(AppConfig, "initialized", False)
    caplog.set_level(logging.DEBUG, logger="axes")

    AppConfig.initialize()

    assert AppConfig.initialized and not [r for r in caplog.records if "BEGIN" in r.getMessage()]
