"""Builds the e-mail for one delivery from templates. Subjects never carry a name, MRN, birth date,
procedure or diagnosis; bodies carry no name, MRN or birth date either. A patient's e-mail is from
the clinic (its name as the sender, its address to reply to), its subject says only what kind of
message it is, and its wording is the protocol's patient wording, never the staff's."""

from datetime import date, timedelta
from email.utils import formataddr, parseaddr
from zoneinfo import ZoneInfo

import icalendar
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from patients.models import Audience, Checkpoint, EnrolmentLink, Patient
from patients.protocol import get_protocol

from .channels import EmailMessage, WebhookMessage
from .models import AcknowledgeLink, CheckIn, CheckInLink, CheckInState, Delivery, DeliveryKind, new_token
from .promises import promises_for
from .rules import get_rules
from .webhook_bodies import body_of

REMINDER_SUBJECT = "A reminder from {clinic}"
CHECKIN_SUBJECT = "Your check-in from {clinic}"
BOTH_SUBJECT = "Your check-in and a reminder from {clinic}"
DIGEST_SUBJECT = "kyphofollow: daily follow-up digest"
ENROLMENT_SUBJECT = "kyphofollow: set up two-factor sign-in"
ALERT_SUBJECTS = {
    "emergency": "EMERGENCY: a patient needs review now",
    "urgent": "URGENT: a patient needs review today",
    "routine": "A patient needs review",
}


def build(delivery: Delivery) -> EmailMessage | WebhookMessage:
    builders = {
        DeliveryKind.REMINDER: _patient_message,
        DeliveryKind.CHECKIN: _patient_message,
        DeliveryKind.DIGEST: _digest,
        DeliveryKind.ALERT: _alert,
        DeliveryKind.WEBHOOK: _webhook,
        DeliveryKind.ENROLMENT: _enrolment,
    }
    return builders[delivery.kind](delivery)


def stored(delivery: Delivery) -> EmailMessage:
    """The e-mail exactly as it was first sent (an identical retry: same bytes, same Message-ID)."""
    return EmailMessage(to=delivery.recipient, subject="", text="", html="", raw=bytes(delivery.message))


def _headers(delivery: Delivery, **extra: str) -> dict[str, str]:
    """The delivery id, and a Message-ID made from it: every copy of one delivery, even one rebuilt
    after a worker died mid-send, carries the same Message-ID, so mail systems can drop repeats."""
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "kyphofollow.invalid"
    stamp = int(delivery.created_at.timestamp() * 1000)
    message_id = f"<delivery-{delivery.pk}.{stamp}@{domain}>"
    return {"X-Kyphofollow-Delivery": str(delivery.pk), "Message-ID": message_id, **extra}


def patient_sender(clinic) -> dict[str, str]:
    """From: the clinic's name at the configured sender address; Reply-To: the clinic's address."""
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL
    return {"from_email": formataddr((clinic.name, address)), "reply_to": clinic.email}


def _alert(delivery: Delivery) -> EmailMessage:
    """The page to a clinician: tier and rule only, and a one-click acknowledge link made for them.
    Plain text only: a page reads the same in every mail client, pager gateway and lock-screen
    preview, with its links in full, and it is the smallest message to build and send."""
    alert = delivery.alert
    token = issue_acknowledge_link(alert=alert, user_id=delivery.recipient_user_id)
    context = {
        "alert": alert,
        "ack_url": settings.SITE_URL + reverse("alert-acknowledge", args=[token]),
        "admin_url": settings.SITE_URL + reverse("admin:alerts_alert_change", args=[alert.pk]),
        "clinic": delivery.clinic,
    }
    return EmailMessage(
        to=delivery.recipient,
        subject=ALERT_SUBJECTS[alert.tier],
        text=render_to_string("alerts/email/alert.txt", context),
        html="",
        headers=_headers(delivery, **{"X-Priority": "1" if alert.tier == "emergency" else "3"}),
    )


def enrolment_link_lifetime() -> timedelta:
    return timedelta(minutes=settings.STAFF_ENROLMENT_LINK_MINUTES)


def _enrolment(delivery: Delivery) -> EmailMessage:
    """A staff member's authenticator enrolment link, made now so that only its digest is stored."""
    raw, digest = new_token()
    expires_at = timezone.now() + enrolment_link_lifetime()
    EnrolmentLink.objects.create(user_id=delivery.recipient_user_id, token_hash=digest, expires_at=expires_at)
    context = {"link": settings.SITE_URL + reverse("admin:otp-enrol", args=[raw]), "expires_at": expires_at}
    return EmailMessage(
        to=delivery.recipient,
        subject=ENROLMENT_SUBJECT,
        text=render_to_string("alerts/email/enrolment.txt", context),
        html="",
        headers=_headers(delivery),
    )


def issue_acknowledge_link(*, alert, user_id: int) -> str:
    """A new single-use link for user `user_id` to acknowledge `alert`; returns the raw token (stored hashed)."""
    raw, digest = new_token()
    expires_at = timezone.now() + get_protocol(alert.protocol_version).link_lifetime("acknowledge")
    AcknowledgeLink.objects.create(alert_id=alert.pk, user_id=user_id, token_hash=digest, expires_at=expires_at)
    return raw


def _webhook(delivery: Delivery) -> WebhookMessage:
    """Standard Webhooks: the message id is the delivery id and the body was frozen when the event
    happened (alerts/webhooks.py), both the same on every attempt, for the receiver to deduplicate on."""
    return WebhookMessage(
        url=delivery.endpoint.url,
        secret=delivery.endpoint.secret,
        message_id=f"msg_{delivery.pk}",
        body=body_of(delivery),
    )


def patient_items(delivery: Delivery) -> tuple[Patient, list[Checkpoint], list[CheckIn]]:
    """The patient of a reminder or check-in message and its items still wanted, in their order: open
    checkpoints and check-ins still waiting for an answer (a day's message lists them in its context).
    Read once per delivery object: deciding whether to send and building the message share it."""
    if not hasattr(delivery, "_items"):
        checkpoint_ids = item_ids(delivery, "reminder") or [pk for pk in [delivery.checkpoint_id] if pk]
        checkin_ids = item_ids(delivery, "checkin") or [pk for pk in [delivery.checkin_id] if pk]
        checkpoints = Checkpoint.objects.filter(pk__in=checkpoint_ids).select_related("procedure__patient")
        checkins = CheckIn.objects.filter(pk__in=checkin_ids).select_related("patient", "procedure")
        patient = delivery.checkin.patient if delivery.checkin_id else delivery.checkpoint.procedure.patient
        delivery._items = (
            patient,
            sorted((row for row in checkpoints if row.is_open), key=lambda row: checkpoint_ids.index(row.pk)),
            sorted((r for r in checkins if r.state == CheckInState.INVITED), key=lambda r: checkin_ids.index(r.pk)),
        )
    return delivery._items


def item_ids(delivery: Delivery, kind: str) -> list[int]:
    """The checkpoint ("reminder") or check-in ("checkin") ids of a message's items, in their order
    (an item is `<kind>:<id>:<n>`; a message written before items were kept lists `checkpoints`)."""
    items = delivery.context.get("items")
    if items is None:
        return list(delivery.context.get("checkpoints", [])) if kind == "reminder" else []
    return [int(item.split(":")[1]) for item in items if item.startswith(f"{kind}:")]


def _patient_message(delivery: Delivery) -> EmailMessage:
    """One e-mail for every item of the patient's message: each reminder and each check-in invitation
    with its patient wording, each invitation with a fresh single-use link (only its digest stored)."""
    patient, checkpoints, checkins = patient_items(delivery)
    clinic = delivery.clinic
    today = timezone.localdate(timezone=ZoneInfo(patient.time_zone))
    rules = get_rules(patient_protocol_version(checkins, checkpoints, clinic))
    context = {
        "clinic": clinic,
        "items": [_item(checkpoint, today) for checkpoint in checkpoints],
        "checkins": [_invitation(checkin, rules) for checkin in checkins],
        "wording": promises_for(clinic, rules, now=timezone.now()),
    }
    with translation.override(patient.language or settings.LANGUAGE_CODE):
        text = render_to_string("alerts/email/patient.txt", context)
        html = render_to_string("alerts/email/patient.html", context)
    booked = [checkpoint for checkpoint in checkpoints if checkpoint.appointment_at]
    attachments = [("appointment.ics", calendar_file(booked, clinic), "text/calendar")] if booked else []
    return EmailMessage(
        to=delivery.recipient,
        subject=_patient_subject(bool(checkpoints), bool(checkins)).format(clinic=clinic.name),
        text=text,
        html=html,
        attachments=attachments,
        headers=_headers(delivery),
        **patient_sender(clinic),
    )


def _patient_subject(reminders: bool, checkins: bool) -> str:
    """What kind of message it is, nothing more."""
    if reminders and checkins:
        return BOTH_SUBJECT
    return CHECKIN_SUBJECT if checkins else REMINDER_SUBJECT


def patient_protocol_version(checkins: list[CheckIn], checkpoints: list[Checkpoint], clinic) -> str:
    if checkins and checkins[0].procedure.protocol_version:
        return checkins[0].procedure.protocol_version
    return checkpoints[0].protocol_version if checkpoints else clinic.protocol_version


def _invitation(checkin: CheckIn, rules) -> dict:
    """One check-in in a patient's message: its patient wording and a new single-use link."""
    raw, digest = new_token()
    expires_at = timezone.now() + get_protocol(rules.version).link_lifetime("checkin")
    CheckInLink.objects.create(checkin=checkin, token_hash=digest, expires_at=expires_at)
    title, text = get_protocol(rules.version).patient_wording(checkin.reason)
    return {
        "title": title,
        "text": text,
        "link": settings.SITE_URL + reverse("checkin-start", args=[raw]),
        "expires_on": timezone.localtime(expires_at, ZoneInfo(checkin.patient.time_zone)).date(),
    }


def _item(checkpoint: Checkpoint, today: date) -> dict:
    """What the patient reads about one checkpoint: its patient wording and its window from today
    on (a window that opened earlier is shown as starting today)."""
    title, text = get_protocol(checkpoint.protocol_version).patient_wording(checkpoint.code)
    zone = ZoneInfo(checkpoint.procedure.patient.time_zone)
    return {
        "title": title,
        "text": text,
        "is_visit": checkpoint.audience == Audience.CLINICIAN_VISIT,
        "window_start": max(checkpoint.window_start, today),
        "window_end": max(checkpoint.window_end, today),
        "appointment_at": timezone.localtime(checkpoint.appointment_at, zone) if checkpoint.appointment_at else None,
    }


def calendar_file(checkpoints: list[Checkpoint], clinic) -> bytes:
    """One event per booked appointment, at its booked time; the UID is stable so a repeated
    reminder updates it. Only booked appointments get one: nothing is put in a calendar on a date
    nobody booked."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//kyphofollow//follow-up//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    for checkpoint in checkpoints:
        title, _text = get_protocol(checkpoint.protocol_version).patient_wording(checkpoint.code)
        event = icalendar.Event()
        event.add("uid", f"checkpoint-{checkpoint.pk}@kyphofollow")
        event.add("dtstamp", timezone.now())
        event.add("dtstart", checkpoint.appointment_at)
        event.add("summary", f"{title} ({clinic.name})")
        event.add("description", f"To change it, call {clinic.name} on {clinic.phone}.")
        calendar.add_component(event)
    return calendar.to_ical()


def _digest(delivery: Delivery) -> EmailMessage:
    context = {
        "clinic": delivery.clinic,
        "missed_count": delivery.context.get("missed_count", 0),
        "due_tasks_count": delivery.context.get("due_tasks_count", 0),
        "local_date": delivery.context.get("local_date"),
        "worklist_url": settings.SITE_URL + reverse("admin:patients_checkpoint_changelist") + "?state__exact=missed",
    }
    return EmailMessage(
        to=delivery.recipient,
        subject=DIGEST_SUBJECT,
        text=render_to_string("alerts/email/digest.txt", context),
        html=render_to_string("alerts/email/digest.html", context),
        headers=_headers(delivery),
    )
