"""The e-mail channel over a real SMTP server: one kept connection per process, never a second copy."""

import pytest

from alerts.channels import DeliveryError, EmailChannel, EmailMessage
from tests.processes import SMTPServer


def message(n: int) -> EmailMessage:
    return EmailMessage(
        to="dr_who@staff.invalid",
        subject="URGENT: a patient needs review today",
        text=f"Page {n}.\n",
        html="",
        headers={"X-Test-Message": str(n)},
    )


def numbers(server) -> list[int]:
    return [int(received["X-Test-Message"]) for received in server.messages]


@pytest.fixture
def channel():
    channel = EmailChannel()
    yield channel
    channel.close()


def test_messages_share_one_smtp_connection(smtp_settings, channel):
    for n in range(3):
        channel.send(message(n))

    assert numbers(smtp_settings) == [0, 1, 2]
    assert len(set(smtp_settings.recorder.peers)) == 1, "each message opened its own connection"


def test_a_page_is_plain_text_only(smtp_settings, channel):
    channel.send(message(1))

    [received] = smtp_settings.messages
    assert received.get_content_type() == "text/plain"
    assert received.get_payload(decode=True).decode().strip() == "Page 1."


def test_a_connection_the_server_dropped_is_replaced_and_the_message_arrives_once(smtp_settings, channel):
    channel.send(message(1))
    port = smtp_settings.port
    smtp_settings.stop()  # the server goes away (restart, idle timeout): the kept connection is dead
    restarted = SMTPServer(port=port).start()
    try:
        channel.send(message(2))
        channel.send(message(3))

        assert numbers(restarted) == [2, 3]
        assert len(set(restarted.recorder.peers)) == 1
    finally:
        restarted.stop()
    assert numbers(smtp_settings) == [1]


def test_after_a_refused_message_the_next_one_opens_a_fresh_connection(smtp_settings, channel):
    channel.send(message(1))
    smtp_settings.fail(1)  # 451 to the next message

    with pytest.raises(DeliveryError) as refused:
        channel.send(message(2))
    channel.send(message(3))

    assert not refused.value.permanent
    assert numbers(smtp_settings) == [1, 3]
    first, third = smtp_settings.recorder.peers
    assert first != third, "the connection that saw the error was used again"


def test_an_unreachable_server_is_a_transient_error_and_keeps_nothing(smtp_settings, channel):
    smtp_settings.stop()

    with pytest.raises(DeliveryError) as unreachable:
        channel.send(message(1))

    assert not unreachable.value.permanent
    assert "unreachable" in str(unreachable.value)
    assert getattr(channel._local, "smtp", None) is None


def test_other_backends_get_one_connection_per_message(settings, tmp_path, channel):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)

    channel.send(message(1))
    channel.send(message(2))

    assert len(list(tmp_path.iterdir())) == 2
