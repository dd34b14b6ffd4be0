"""One small class per medium. Each raises `DeliveryError`, marked permanent or transient."""

import json
import smtplib
from dataclasses import dataclass, field

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from standardwebhooks import Webhook


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


@dataclass
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str
    attachments: list[tuple[str, bytes, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


class EmailChannel:
    def send(self, message: EmailMessage) -> None:
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers=message.headers,
        )
        email.attach_alternative(message.html, "text/html")
        for name, content, mimetype in message.attachments:
            email.attach(name, content, mimetype)
        try:
            # One connection per message: with the file backend that is one file per message.
            with get_connection() as connection:
                connection.send_messages([email])
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError("recipient refused by the mail server", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"mail server answered {exc.smtp_code}",
                permanent=500 <= exc.smtp_code < 600 and exc.smtp_code not in (521, 554),
            ) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"mail server unreachable: {type(exc).__name__}", permanent=False) from exc


@dataclass
class WebhookMessage:
    url: str
    secret: str
    message_id: str
    payload: dict


class WebhookChannel:
    """POST a JSON event signed Standard Webhooks style (`webhook-id`, `-timestamp`, `-signature`)."""

    timeout_seconds = 10

    def send(self, message: WebhookMessage) -> None:
        body = json.dumps(message.payload, cls=DjangoJSONEncoder, separators=(",", ":"))
        sent_at = timezone.now()
        signature = Webhook(message.secret).sign(message.message_id, sent_at, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
            "user-agent": "kyphofollow-webhooks/1",
        }
        try:
            response = requests.post(
                message.url, data=body.encode(), headers=headers, timeout=self.timeout_seconds, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"endpoint unreachable: {type(exc).__name__}", permanent=False) from exc
        if 200 <= response.status_code < 300:
            return
        transient = response.status_code >= 500 or response.status_code in (408, 409, 425, 429)
        raise DeliveryError(f"endpoint answered {response.status_code}", permanent=not transient)


CHANNELS = {"email": EmailChannel(), "webhook": WebhookChannel()}
