"""Webhooks go to public https:// addresses only: loopback, private, link-local, multicast, unspecified
and reserved addresses are refused where an endpoint is saved (a field error) and again at send time,
on the address the connection would go to after DNS resolution, with nothing sent to it. Redirects are
not followed, and a recorded error says what failed without echoing the receiver."""

import base64
import socket
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.models import Delivery, DeliveryKind, DeliveryState, WebhookEndpoint
from alerts.outbox import deliver
from alerts.reports import submit_report
from tests.processes import WebhookReceiver, free_port

SECRET = "whsec_" + base64.b64encode(b"kyphofollow-ssrf-secret-0123456789").decode()
REAL_GETADDRINFO = socket.getaddrinfo

# URL → the reason a clinic admin and the delivery's recorded error are given.
REFUSED = [
    ("https://127.0.0.1:5432/", "loopback"),
    ("http://127.0.0.1:8000/hooks", "loopback"),
    ("https://[::1]:6379/", "loopback"),
    ("https://[::ffff:127.0.0.1]/", "loopback"),
    ("https://0.0.0.0/", "unspecified address"),
    ("https://[::]/", "unspecified address"),
    ("https://10.1.2.3/hooks", "private network"),
    ("https://172.16.5.4/hooks", "private network"),
    ("https://172.31.255.1/hooks", "private network"),
    ("https://192.168.1.1/hooks", "private network"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[fe80::1]/", "link-local"),
    ("https://224.0.0.1/", "multicast"),
    ("https://[ff02::1]/", "multicast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://100.64.0.1/", "reserved"),
    ("https://localhost/hooks", "loopback"),
    ("https://ehr-internal.example/hooks", "private network"),  # a name resolving to 10.0.0.5
    ("https://ehr-loopback.example/hooks", "loopback"),  # a name resolving to 127.0.0.1
]
NAMES = {"ehr-internal.example": "10.0.0.5", "ehr-loopback.example": "127.0.0.1", "ehr.example": "93.184.215.14"}


@pytest.fixture
def resolver(monkeypatch):
    """Test host names resolve as NAMES says (others as the system resolves them); `names` can be
    changed meanwhile, as DNS can between saving an endpoint and sending to it; `lookups` counts them."""

    class Resolver:
        names = dict(NAMES)
        lookups: list[str] = []

        def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
            if host in self.names:
                self.lookups.append(host)
                address = self.names[host]
                af = socket.AF_INET6 if ":" in address else socket.AF_INET
                sockaddr = (address, port or 0, 0, 0) if af == socket.AF_INET6 else (address, port or 0)
                return [(af, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)

    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def production_addresses(settings):
    """What production allows: no loopback, no plain http."""
    settings.WEBHOOK_ALLOW_LOOPBACK = False


def endpoint(clinic, url: str, **fields) -> WebhookEndpoint:
    return WebhookEndpoint(clinic=clinic, url=url, secret=SECRET, **fields)


def webhook_for(procedure) -> Delivery:
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    return Delivery.objects.filter(kind=DeliveryKind.WEBHOOK).latest("id")


@pytest.fixture
def procedure(make_procedure):
    return make_procedure(performed_on=timezone.localdate() - timedelta(days=3))


@pytest.mark.hazard("HAZ-48")
@pytest.mark.django_db
@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_an_internal_address_is_refused_when_the_endpoint_is_saved_with_a_field_error(
    clinic, resolver, production_addresses, url, reason
):
    with pytest.raises(ValidationError) as refused:
        endpoint(clinic, url).full_clean()

    [message] = refused.value.message_dict["url"]
    assert message == f"This address cannot receive webhooks: address not allowed: {reason}."


@pytest.mark.django_db
def test_a_public_https_address_is_accepted_and_plain_http_is_not(clinic, resolver, production_addresses):
    endpoint(clinic, "https://ehr.example/hooks/kyphofollow").full_clean()
    endpoint(clinic, "https://93.184.215.14:8443/hooks").full_clean()

    with pytest.raises(ValidationError) as refused:
        endpoint(clinic, "http://ehr.example/hooks").full_clean()
    assert "https:// required" in refused.value.message_dict["url"][0]


@pytest.mark.django_db
def test_in_development_loopback_over_http_is_allowed_but_other_plain_http_is_not(clinic, resolver, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    endpoint(clinic, "http://127.0.0.1:9000/hooks").full_clean()
    endpoint(clinic, "http://localhost:9000/hooks").full_clean()

    for url in ("http://ehr.example/hooks", "http://10.1.2.3/hooks", "https://0.0.0.0/"):
        with pytest.raises(ValidationError):
            endpoint(clinic, url).full_clean()


@pytest.mark.hazard("HAZ-48")
@pytest.mark.django_db
@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_an_internal_address_is_refused_at_send_time_and_nothing_is_sent(
    clinic, procedure, resolver, production_addresses, url, reason, monkeypatch
):
    """An endpoint row that bypassed validation (written before these checks, or edited in the database)
    is refused by the send itself: no connection is opened, and the delivery fails for good saying why."""
    connects = []
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: connects.append(address))
    WebhookEndpoint.objects.create(clinic=clinic, url=url, secret=SECRET)
    hook = webhook_for(procedure)

    assert deliver(delivery_id=hook.pk).state == DeliveryState.FAILED

    hook.refresh_from_db()
    assert hook.last_error == f"address not allowed: {reason}"
    assert connects == [], "a connection was opened to a refused address"


@pytest.mark.hazard("HAZ-48")
@pytest.mark.django_db
def test_a_name_that_resolved_public_on_save_and_private_at_send_is_refused_on_the_address_it_resolves_to(
    clinic, procedure, resolver, production_addresses, webhook_receiver
):
    saved = endpoint(clinic, "https://ehr.example/hooks")
    saved.full_clean()
    saved.save()
    resolver.names["ehr.example"] = "127.0.0.1"  # DNS rebinding between save and send
    hook = webhook_for(procedure)

    assert deliver(delivery_id=hook.pk).state == DeliveryState.FAILED

    hook.refresh_from_db()
    assert hook.last_error == "address not allowed: loopback"
    assert not webhook_receiver.requests


@pytest.mark.hazard("HAZ-48")
@pytest.mark.django_db
def test_the_name_is_resolved_once_per_send_and_the_connection_goes_to_that_address(
    clinic, procedure, resolver, settings, webhook_receiver
):
    """Check and connection use one resolution (no second lookup an attacker's DNS could answer
    differently); the receiver still sees the endpoint's own host name."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True  # the receiver is on this machine
    resolver.names["ehr-dev.example"] = "127.0.0.1"
    port = webhook_receiver.server.server_address[1]
    WebhookEndpoint.objects.create(clinic=clinic, url=f"http://ehr-dev.example:{port}/hooks", secret=SECRET)
    hook = webhook_for(procedure)
    resolver.lookups.clear()

    assert deliver(delivery_id=hook.pk).state == DeliveryState.SENT

    assert resolver.lookups == ["ehr-dev.example"]
    [request] = webhook_receiver.requests
    assert request["headers"]["host"] == f"ehr-dev.example:{port}"


@pytest.mark.hazard("HAZ-48")
@pytest.mark.django_db
def test_a_redirect_to_a_private_address_is_not_followed_and_is_retried_as_a_failure(
    clinic, procedure, settings, webhook_receiver
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True  # the receiver is on this machine
    internal = WebhookReceiver().start()  # where the redirect points: must never be reached
    try:
        webhook_receiver.status = 307
        webhook_receiver.location = "http://169.254.169.254/latest/meta-data/"
        WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)
        hook = webhook_for(procedure)
        assert deliver(delivery_id=hook.pk).state == DeliveryState.PENDING

        webhook_receiver.location = internal.url
        hook.refresh_from_db()
        Delivery.objects.filter(pk=hook.pk).update(next_attempt_at=timezone.now())
        assert deliver(delivery_id=hook.pk).state == DeliveryState.PENDING
    finally:
        internal.stop()

    hook.refresh_from_db()
    assert hook.last_error == "answered HTTP 307 (redirects are not followed)"
    assert len(webhook_receiver.requests) == 2
    assert not internal.requests


@pytest.mark.django_db
def test_recorded_errors_say_what_failed_and_never_echo_the_receiver(
    clinic, procedure, make_procedure, settings, webhook_receiver
):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    webhook_receiver.status = 404
    webhook_receiver.answer_body = b"internal-service-banner: redis 7.2 at db-7.internal"
    answering = WebhookEndpoint.objects.create(clinic=clinic, url=webhook_receiver.url, secret=SECRET)
    hook = webhook_for(procedure)
    deliver(delivery_id=hook.pk)
    hook.refresh_from_db()
    assert hook.last_error == "answered HTTP 404"

    answering.delete()
    WebhookEndpoint.objects.create(clinic=clinic, url=f"http://127.0.0.1:{free_port()}/hooks", secret=SECRET)
    closed = webhook_for(make_procedure(performed_on=timezone.localdate() - timedelta(days=3)))
    deliver(delivery_id=closed.pk)
    closed.refresh_from_db()
    assert closed.last_error == "connection refused"
    assert closed.state == DeliveryState.PENDING, "retried like any other failure"

    for error in Delivery.objects.values_list("last_error", flat=True):
        assert "banner" not in error and "receiver-internal" not in error and "Error" not in error
