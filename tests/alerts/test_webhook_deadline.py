"""One wall-clock deadline per webhook send: a receiver dripping its answer (in plain HTTP, or in the
middle of a TLS handshake) is cut there, although each byte arrives well within any per-read timeout."""

import socket
import ssl
import subprocess
import time

import pytest
import requests.adapters

from alerts.webhook_http import SendFailed, post
from tests.processes import DripReceiver, wait_until


@pytest.mark.hazard("HAZ-48")
@pytest.mark.parametrize("answer", [DripReceiver.HTTP, DripReceiver.TLS], ids=["http", "tls-handshake"])
def test_a_dripping_receiver_is_cut_at_the_deadline(settings, answer):
    settings.WEBHOOK_ALLOW_LOOPBACK = True  # the receiver is on this machine
    drip = DripReceiver(interval=0.1, answer=answer).start()
    url = drip.url if answer == DripReceiver.HTTP else drip.url.replace("http://", "https://")
    started = time.monotonic()
    try:
        with pytest.raises(SendFailed, match=r"^timed out after 1 s$"):
            post(url, b"{}", {"content-type": "application/json"}, deadline_seconds=1)
        elapsed = time.monotonic() - started
    finally:
        drip.stop()

    assert 0.9 <= elapsed < 2.5, elapsed  # a per-read timeout would have waited for the whole drip
    assert drip.opened == 1


@pytest.fixture
def tls_certificate(tmp_path, monkeypatch):
    """A self-signed certificate for `ehr-tls.example`, trusted by the webhook send in this test only;
    the name resolves to 127.0.0.1 (loopback allowed, as in development)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=ehr-tls.example"),
            *("-addext", "subjectAltName=DNS:ehr-tls.example"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(cert))
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        return real("127.0.0.1" if host in ("ehr-tls.example", "other-name.example") else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.hazard("HAZ-48")
def test_over_tls_the_pinned_connection_checks_the_certificate_against_the_name_and_a_drip_is_cut(
    settings, tls_certificate
):
    """The connection goes to the address vetted for the name, yet TLS still verifies the certificate
    against that name (SNI included): another name on the same address is refused. A receiver
    dripping its answer after the handshake is cut at the deadline."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    drip = DripReceiver(interval=0.1, tls=tls_certificate).start()
    port = drip.listener.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(SendFailed, match=r"^timed out after 1 s$"):
            post(f"https://ehr-tls.example:{port}/hooks", b"{}", {}, deadline_seconds=1)
        elapsed = time.monotonic() - started
        with pytest.raises(SendFailed, match=r"^TLS handshake or certificate check failed$"):
            post(f"https://other-name.example:{port}/hooks", b"{}", {}, deadline_seconds=1)
        wait_until(lambda: len(drip.connections) == 2, timeout=10, message="the receiver to see both closed")
    finally:
        drip.stop()

    assert 0.9 <= elapsed < 2.5, elapsed  # a per-read timeout would have waited for the whole drip
    assert max(drip.connections) > 0.9, "the answer had started dripping"
