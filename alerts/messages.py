"""Builds the e-mail for one delivery from templates. Subjects never carry a name, MRN, birth date,
procedure or diagnosis; bodies carry no name, MRN or birth date either."""

from datetime import timedelta

import icalendar
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from patients.models import Audience

from .channels import EmailMessage
from .models import Delivery, DeliveryKind

REMINDER_SUBJECT = "A message from your care team"
DIGEST_SUBJECT = "kyphofollow: daily follow-up digest"


def build(delivery: Delivery) -> EmailMessage:
    if delivery.kind == DeliveryKind.REMINDER:
        return _reminder(delivery)
    return _digest(delivery)


def _reminder(delivery: Delivery) -> EmailMessage:
    checkpoint = delivery.checkpoint
    patient = checkpoint.procedure.patient
    clinic = delivery.clinic
    context = {
        "clinic": clinic,
        "checkpoint": checkpoint,
        "is_visit": checkpoint.audience == Audience.CLINICIAN_VISIT,
        "window_start": checkpoint.window_start,
        "window_end": checkpoint.window_end,
    }
    with translation.override(patient.language or settings.LANGUAGE_CODE):
        text = render_to_string("alerts/email/reminder.txt", context)
        html = render_to_string("alerts/email/reminder.html", context)
    attachments = []
    if checkpoint.calendar:
        attachments.append(("follow-up.ics", calendar_file(delivery), "text/calendar"))
    return EmailMessage(
        to=delivery.recipient,
        subject=REMINDER_SUBJECT,
        text=text,
        html=html,
        attachments=attachments,
        headers={"X-Kyphofollow-Delivery": str(delivery.pk)},
    )


def calendar_file(delivery: Delivery) -> bytes:
    """An all-day event on the target date; the UID is stable so a repeated reminder updates it."""
    checkpoint = delivery.checkpoint
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//kyphofollow//follow-up//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"checkpoint-{checkpoint.pk}@kyphofollow")
    event.add("dtstamp", timezone.now())
    event.add("dtstart", checkpoint.target_date)
    event.add("dtend", checkpoint.target_date + timedelta(days=1))
    event.add("summary", f"Follow-up with {delivery.clinic.name}")
    event.add(
        "description",
        f"{checkpoint.title}. Please arrange it between {checkpoint.window_start:%d %B} and "
        f"{checkpoint.window_end:%d %B}. Call {delivery.clinic.phone} to book or change it.",
    )
    event.add("transp", "TRANSPARENT")
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
        headers={"X-Kyphofollow-Delivery": str(delivery.pk)},
    )
