"""One small class per medium. Each raises `DeliveryError`, marked permanent or transient."""

import logging
import os
import smtplib
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import sanitize_address
from django.utils import timezone
from standardwebhooks import Webhook

from . import webhook_http


class DeliveryError(Exception):
    """`unknown`: the whole message went out but no answer came; the server may have delivered it."""

    def __init__(self, message: str, *, permanent: bool, unknown: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.unknown = unknown


@dataclass
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str
    attachments: list[tuple[str, bytes, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # the message as sent (set by the channel), or a stored one to re-send as is
    from_email: str = ""  # the From header (default DEFAULT_FROM_EMAIL); the envelope sender never changes
    reply_to: str = ""


class _StoredEmail(EmailMultiAlternatives):
    """A stored message handed to a non-SMTP backend (files, locmem) unchanged."""

    def __init__(self, raw: bytes, to: str):
        super().__init__(to=[to], from_email=settings.DEFAULT_FROM_EMAIL)
        self._stored = message_from_bytes(raw, policy=policy.SMTP)

    def message(self, *args, **kwargs):
        return self._stored


class _BodySentTracking:
    """smtplib.SMTP that notes whether a message's body, final dot included, went to the socket: a
    failure after that (no end-of-DATA answer) leaves the outcome unknown."""

    body_sent = False
    _in_data = False

    def data(self, msg):
        self.body_sent, self._in_data = False, True
        try:
            return super().data(msg)
        finally:
            self._in_data = False

    def send(self, s):
        super().send(s)
        if self._in_data and isinstance(s, bytes):  # data() sends its command as str, the body as bytes
            self.body_sent = True


class _SMTP(_BodySentTracking, smtplib.SMTP):
    pass


class _SMTPSSL(_BodySentTracking, smtplib.SMTP_SSL):
    pass


class TrackingSMTPBackend(SMTPBackend):
    """Django's SMTP backend on the tracking connection classes above."""

    @property
    def connection_class(self):
        return _SMTPSSL if self.use_ssl else _SMTP


logger = logging.getLogger(__name__)


class EmailChannel:
    """Sends through Django's configured e-mail backend.

    Over SMTP each process keeps one connection open and reuses it, so a page does not wait for a
    new TCP connection, greeting and EHLO. A reused connection is first checked with NOOP: a
    connection the server has closed is replaced before any of the message is sent, so reuse never
    causes a second copy. After any error the connection is dropped and the next message opens a
    fresh one. Other backends (the file backend of `make run`, locmem in tests) get one connection
    per message, which for the file backend is one file per message.
    """

    def __init__(self):
        self._local = threading.local()  # one SMTP connection per thread of each process

    def send(self, message: EmailMessage) -> None:
        """Send `message` (its stored bytes as they are, when it has them), and set `message.raw` to
        the bytes sent, for an identical retry."""
        email = _StoredEmail(message.raw, message.to) if message.raw is not None else self._email(message)
        try:
            connection = get_connection()
            if isinstance(connection, SMTPBackend):
                message.raw = message.raw or email.message().as_bytes(linesep="\r\n")
                self._send_smtp(TrackingSMTPBackend(), message.to, message.raw)
            else:
                with connection:
                    connection.send_messages([email])
                message.raw = message.raw or email.message().as_bytes(linesep="\r\n")
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError("recipient refused by the mail server", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"mail server answered {exc.smtp_code}",
                permanent=500 <= exc.smtp_code < 600 and exc.smtp_code not in (521, 554),
            ) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            if getattr(exc, "body_sent", False):
                raise DeliveryError(
                    f"mail server did not answer the end of the message: outcome unknown ({type(exc).__name__})",
                    permanent=False,
                    unknown=True,
                ) from exc
            raise DeliveryError(f"mail server unreachable: {type(exc).__name__}", permanent=False) from exc

    @staticmethod
    def _email(message: EmailMessage) -> EmailMultiAlternatives:
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=message.from_email or settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers=message.headers,
            reply_to=[message.reply_to] if message.reply_to else None,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        for name, content, mimetype in message.attachments:
            email.attach(name, content, mimetype)
        return email

    def _send_smtp(self, fresh: SMTPBackend, to: str, raw: bytes) -> None:
        key = (os.getpid(), fresh.host, fresh.port, fresh.username, fresh.use_tls, fresh.use_ssl)
        kept = getattr(self._local, "smtp", None)
        if kept is not None and (kept[0] != key or not _answers_noop(kept[1])):
            self._discard(quit=False)
            kept = None
        if kept is None:
            fresh.open()
            kept = self._local.smtp = (key, fresh)
        smtp = kept[1].connection
        try:
            smtp.sendmail(
                sanitize_address(settings.DEFAULT_FROM_EMAIL, settings.DEFAULT_CHARSET),
                [sanitize_address(to, settings.DEFAULT_CHARSET)],
                raw,
            )
        except BaseException as exc:
            exc.body_sent = getattr(smtp, "body_sent", False)
            self._discard(quit=False)  # no QUIT to a server that may be hanging
            raise

    def close(self) -> None:
        """Say QUIT on this thread's kept SMTP connection, if any (at worker shutdown)."""
        self._discard(quit=True)

    def _discard(self, *, quit: bool) -> None:
        kept, self._local.smtp = getattr(self._local, "smtp", None), None
        if kept is None:
            return
        backend = kept[1]
        try:
            if quit and kept[0][0] == os.getpid():  # never QUIT the parent's session from a forked child
                backend.close()
            elif backend.connection is not None:
                backend.connection.close()
        except (smtplib.SMTPException, OSError):
            logger.debug("closing a kept SMTP connection failed", exc_info=True)
        finally:
            backend.connection = None


def _answers_noop(backend: SMTPBackend) -> bool:
    if backend.connection is None:
        return False
    try:
        return backend.connection.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


@dataclass
class WebhookMessage:
    url: str
    secret: str
    message_id: str
    body: bytes  # frozen when the event happened (alerts/webhooks.py): every attempt sends these bytes


class EndpointGone(DeliveryError):
    """The receiver answered 410 Gone: the endpoint is disabled and nothing more is sent to it."""


class WebhookChannel:
    """POST a JSON event signed Standard Webhooks style (`webhook-id`, `-timestamp`, `-signature`),
    through alerts/webhook_http.py (vetted address, one deadline, no redirect followed).

    Every answer but a 2xx is a failed attempt to retry (a redirect and a timeout too), except 410
    Gone. An address that is not allowed fails for good at once: no connection is made to it."""

    def send(self, message: WebhookMessage) -> None:
        sent_at = timezone.now()
        signature = Webhook(message.secret).sign(message.message_id, sent_at, message.body.decode())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
            "user-agent": "kyphofollow-webhooks/1",
        }
        try:
            status = webhook_http.post(
                message.url, message.body, headers, deadline_seconds=settings.WEBHOOK_DEADLINE_SECONDS
            )
        except webhook_http.SendFailed as exc:
            raise DeliveryError(str(exc), permanent=exc.refused) from exc
        if 200 <= status < 300:
            return
        if status == 410:
            raise EndpointGone("answered HTTP 410 Gone: endpoint disabled", permanent=True)
        redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise DeliveryError(f"answered HTTP {status}{redirect}", permanent=False)


CHANNELS = {"email": EmailChannel(), "webhook": WebhookChannel()}
