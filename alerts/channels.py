"""One small class per medium. Each raises `DeliveryError`, marked permanent or transient."""

import smtplib
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection


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


CHANNELS = {"email": EmailChannel()}
