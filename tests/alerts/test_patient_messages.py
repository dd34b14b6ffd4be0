"""Patient e-mails a patient can trust: from the clinic, a subject that says only what kind of message
it is, the protocol's patient wording (never the staff's), one message for the same day's items, a
weekly cap on non-safety messages, windows from today on, and an .ics only for a booked appointment."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr

import icalendar
import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.checkins import sweep_checkins
from alerts.message_cap import UNCAPPED
from alerts.models import CheckIn, Delivery, DeliveryKind
from alerts.outbox import deliver
from alerts.reminders import sweep_reminders
from patients.models import Checkpoint
from patients.protocol import get_protocol
from patients.services import book_appointment, current_tier, sweep_checkpoint_states
from tests import builders

# Words of staff titles and clinical detail that must never be in a patient's subject.
CLINICAL_WORDS = ("clinical", "neurology", "needle", "dxa", "fracture", "kyphoplasty", "vertebroplasty", "pain")
DAY0 = date(2026, 3, 2)


def at_utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cp(procedure, code, sequence=1) -> Checkpoint:
    return Checkpoint.objects.get(procedure=procedure, code=code, sequence=sequence)


def sent_for(checkpoint) -> "mail.EmailMessage":
    [delivery] = Delivery.objects.filter(checkpoint=checkpoint, kind=DeliveryKind.REMINDER)
    deliver(delivery_id=delivery.pk, now=max(timezone.now(), delivery.next_attempt_at))  # a day's message waits
    return mail.outbox[-1]


@pytest.fixture
def visit(make_procedure):
    """An unbooked clinical visit (CP-04) of a procedure done on DAY0."""
    with time_machine.travel(at_utc(2026, 3, 2, 12), tick=False):
        procedure = make_procedure(performed_on=DAY0, fracture_diagnosed_on=None)
    return cp(procedure, "CP-04")


def assert_from_the_clinic(message, clinic):
    name, address = parseaddr(message.from_email)
    assert name == clinic.name
    assert address == parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    assert message.reply_to == [clinic.email]
    assert message.message()["From"].startswith(f'"{clinic.name}"') or message.message()["From"].startswith(clinic.name)


@pytest.mark.django_db
def test_reminder_is_from_the_clinic_with_a_plain_subject_and_patient_wording(visit):
    clinic = visit.procedure.patient.clinic
    sweep_reminders(now=visit.due_at)
    message = sent_for(visit)

    assert message.subject == f"A reminder from {clinic.name}"
    assert not any(word in message.subject.lower() for word in CLINICAL_WORDS)
    assert_from_the_clinic(message, clinic)
    title, text = get_protocol(visit.protocol_version).patient_wording("CP-04")
    html = message.alternatives[0][0]
    for body in (message.body, html):
        assert title in body and text in body
        assert visit.title not in body  # "Clinical visit: pain, neurology, needle site…" is for staff
        assert "neurology" not in body.lower()
    assert message.attachments == []  # nothing was booked: no calendar entry


@pytest.mark.django_db
def test_checkin_invitation_is_from_the_clinic_with_a_plain_subject(make_procedure):
    with time_machine.travel(builders.CHECKIN_DUE, tick=False):
        procedure = make_procedure(performed_on=builders.PERFORMED_ON, fracture_diagnosed_on=date(2026, 3, 1))
        invitation = builders.send_invitation(checkin=builders.plan_checkin(procedure=procedure))
    clinic = procedure.patient.clinic
    assert invitation.message.subject == f"Your check-in from {clinic.name}"
    assert_from_the_clinic(invitation.message, clinic)


@pytest.mark.django_db
def test_every_patient_facing_checkpoint_has_patient_wording_apart_from_the_staff_title():
    protocol = get_protocol("2026.1")
    for rule in (*protocol.checkpoints, *protocol.intensification):
        if rule.audience == "coordinator_task":
            continue
        assert rule.patient_title and rule.patient_text, rule.id
        assert rule.patient_title != rule.title, rule.id


def test_a_patient_facing_checkpoint_without_patient_wording_is_refused_on_load():
    from patients.protocol.parsing import parse_checkpoint
    from patients.protocol.vocabulary import ProtocolError

    entry = {"id": "CP-X", "title": "Staff words", "audience": "patient_reminder", "anchor": "procedure"}
    entry |= {"target": 3, "earliest": 1, "latest": 5, "reminder_every_days": 1, "reminder_max": 1, "source": "S0"}
    with pytest.raises(ProtocolError, match="patient_title"):
        parse_checkpoint(entry, "test.toml [[checkpoints]] (CP-X)")


@pytest.mark.django_db
def test_a_booked_appointment_gets_an_ics_at_its_booked_time(visit, coordinator):
    booked = timezone.make_aware(datetime(2026, 4, 14, 10, 30), timezone.get_fixed_timezone(60))
    with time_machine.travel(at_utc(2026, 3, 20, 12), tick=False):
        book_appointment(checkpoint=visit, appointment_at=booked, by=coordinator)
    assert visit.events.filter(kind="booked", by=coordinator).exists()

    sweep_reminders(now=visit.due_at)
    message = sent_for(visit)

    [(name, content, mimetype)] = message.attachments
    assert (name, mimetype) == ("appointment.ics", "text/calendar")
    [event] = icalendar.Calendar.from_ical(content).walk("VEVENT")
    assert event.decoded("dtstart") == booked
    assert str(event["uid"]) == f"checkpoint-{visit.pk}@kyphofollow"
    assert "booked for" in message.body


@pytest.mark.django_db
def test_booking_refuses_a_past_moment_and_a_staff_task(visit, coordinator):
    with pytest.raises(ValidationError, match="in the past"):
        book_appointment(checkpoint=visit, appointment_at=timezone.now() - timedelta(hours=1), by=coordinator)
    task = Checkpoint.objects.filter(procedure=visit.procedure, audience="coordinator_task").first()
    with pytest.raises(ValidationError, match="task for staff"):
        book_appointment(checkpoint=task, appointment_at=timezone.now() + timedelta(days=3), by=coordinator)
    visit.refresh_from_db()
    assert visit.appointment_at is None


@pytest.mark.django_db
def test_a_window_that_opened_earlier_is_shown_from_today(visit):
    late = visit.window_start + timedelta(days=10)  # the reminder goes out ten days into the window
    moment = at_utc(late.year, late.month, late.day, 9)
    Checkpoint.objects.filter(pk=visit.pk).update(next_reminder_at=moment)
    sweep_reminders(now=moment)
    with time_machine.travel(moment, tick=False):
        message = sent_for(visit)
    assert f"between {late:%-d %B %Y}" in message.body
    assert f"{visit.window_start:%-d %B %Y}" not in message.body


@pytest.mark.django_db
def test_same_day_reminders_of_one_patient_go_in_one_message(make_procedure):
    with time_machine.travel(at_utc(2026, 3, 2, 12), tick=False):
        procedure = make_procedure(performed_on=DAY0, fracture_diagnosed_on=date(2026, 2, 20))
    dxa, physio = cp(procedure, "CP-06"), cp(procedure, "CP-08")
    moment = at_utc(2026, 3, 20, 9)
    Checkpoint.objects.filter(pk__in=[dxa.pk, physio.pk]).update(next_reminder_at=moment)

    sweep_reminders(now=moment)

    [delivery] = Delivery.objects.filter(kind=DeliveryKind.REMINDER)
    assert sorted(delivery.context["items"]) == sorted([f"reminder:{dxa.pk}:1", f"reminder:{physio.pk}:1"])
    deliver(delivery_id=delivery.pk)
    [message] = mail.outbox
    protocol = get_protocol(dxa.protocol_version)
    for code in ("CP-06", "CP-08"):
        assert protocol.patient_wording(code)[0] in message.body
    for checkpoint in (dxa, physio):
        checkpoint.refresh_from_db()
        assert checkpoint.reminders_sent == 1


def counted_per_week(patient) -> list[int]:
    """For each day, the patient's counted (non-safety) messages in the 7 days up to it."""
    rows = Delivery.objects.filter(kind__in=[DeliveryKind.REMINDER, DeliveryKind.CHECKIN]).exclude(
        context__has_key=UNCAPPED
    )
    moments = [row.created_at for row in rows if _patient_of(row) == patient.pk]
    days = [at_utc(2026, 3, 2) + timedelta(days=n) for n in range(31)]
    return [sum(1 for m in moments if day - timedelta(days=7) < m <= day) for day in days]


def _patient_of(delivery) -> int:
    return delivery.checkin.patient_id if delivery.checkin_id else delivery.checkpoint.procedure.patient_id


@pytest.mark.hazard("HAZ-51")
@pytest.mark.django_db
def test_a_high_tier_patient_gets_at_most_the_weekly_cap_over_30_days_and_every_safety_message(make_procedure):
    with time_machine.travel(at_utc(2026, 3, 2, 12), tick=False):
        procedure = make_procedure(performed_on=DAY0, fracture_diagnosed_on=None, facet_joint_violation=True)
    assert current_tier(procedure) == "high"
    patient = procedure.patient
    cap = get_protocol(procedure.protocol_version).patient_messages.weekly_cap

    for hour in range(0, 30 * 24, 3):  # every 3 hours: reminders go at 09:00 local, check-ins by the hour
        now = at_utc(2026, 3, 2, 12) + timedelta(hours=hour)
        sweep_checkpoint_states(now=now)
        sweep_reminders(now=now)
        sweep_checkins(now=now)

    weekly = counted_per_week(patient)
    assert max(weekly) <= cap
    messages = Delivery.objects.filter(kind__in=[DeliveryKind.REMINDER, DeliveryKind.CHECKIN])
    assert messages.count() <= 12  # it was about 20 in a month without the cap
    # The safety screen (CP-01) is never capped: its invitation and its re-send both went out.
    safety = CheckIn.objects.get(procedure=procedure, reason="CP-01")
    assert Delivery.objects.filter(checkin=safety, context__has_key=UNCAPPED).count() == 2
    # Capped check-ins waited; none was dropped: each one planned was invited or became a call task.
    assert (
        not CheckIn.objects.filter(procedure=procedure, state="invited", invitations_sent=0)
        .exclude(next_action_at__gt=at_utc(2026, 3, 31))
        .exists()
    )


@pytest.mark.hazard("HAZ-51")
@pytest.mark.django_db
def test_a_safety_checkin_goes_at_once_when_the_cap_is_reached_and_another_waits(make_procedure):
    with time_machine.travel(at_utc(2026, 3, 2, 12), tick=False):
        procedure = make_procedure(performed_on=DAY0, fracture_diagnosed_on=None, facet_joint_violation=True)
    now = at_utc(2026, 3, 4, 10)
    cap = get_protocol(procedure.protocol_version).patient_messages.weekly_cap
    for number in range(cap):  # the week's counted messages, already sent
        Delivery.objects.create(
            kind=DeliveryKind.REMINDER,
            cause=f"reminder:earlier:{number}",
            recipient=procedure.patient.email,
            clinic=procedure.patient.clinic,
            checkpoint=cp(procedure, "CP-04"),
            patient=procedure.patient,
            next_attempt_at=now,
            state="sent",
        )
    Delivery.objects.update(created_at=now - timedelta(days=1))
    safety = CheckIn.objects.create(
        patient=procedure.patient, procedure=procedure, reason="PAIN_DAY14", next_action_at=now
    )
    routine = CheckIn.objects.create(
        patient=procedure.patient,
        procedure=procedure,
        checkpoint=cp(procedure, "INT-HIGH-PRO"),
        reason="INT-HIGH-PRO",
        next_action_at=now,
    )

    sweep_checkins(now=now)

    assert Delivery.objects.filter(checkin=safety).count() == 1
    assert not Delivery.objects.filter(checkin=routine).exists()
    routine.refresh_from_db()
    assert routine.next_action_at == now + timedelta(days=1)
    assert Counter(Delivery.objects.values_list("kind", flat=True)) == {"reminder": cap, "checkin": 1}


def plain_text(message) -> str:
    part = next(part for part in message.walk() if part.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def send_pending(now: datetime) -> None:
    """Every pending delivery, as the worker would once its moment has come."""
    for delivery in Delivery.objects.filter(state="pending").order_by("id"):
        deliver(delivery_id=delivery.pk, now=max(now, delivery.next_attempt_at))


def same_day_pair(make_procedure, moment: datetime) -> tuple[Checkpoint, Checkpoint]:
    """A DXA reminder (CP-06) and a routine check-in (CP-03) of one patient, both due at `moment`."""
    with time_machine.travel(at_utc(2026, 3, 2, 12), tick=False):
        procedure = make_procedure(performed_on=DAY0, fracture_diagnosed_on=date(2026, 2, 20))
    dxa, checkin = cp(procedure, "CP-06"), cp(procedure, "CP-03")
    assert not get_protocol(dxa.protocol_version).patient_messages.uncapped & {"CP-06", "CP-03"}
    Checkpoint.objects.filter(pk__in=[dxa.pk, checkin.pk]).update(next_reminder_at=moment)
    return dxa, checkin


@pytest.mark.django_db
def test_a_reminder_and_a_checkin_due_the_same_day_arrive_as_one_email(make_procedure, smtp_settings):
    moment = at_utc(2026, 3, 20, 9)
    dxa, checkpoint = same_day_pair(make_procedure, moment)

    sweep_reminders(now=moment)  # the reminder, and the check-in it makes of CP-03
    sweep_checkins(now=moment + timedelta(minutes=1))  # the invitation, one beat tick later
    sweep_reminders(now=moment + timedelta(minutes=1))  # re-runs write nothing more
    sweep_checkins(now=moment + timedelta(minutes=1))
    send_pending(moment + timedelta(minutes=5))

    [delivery] = Delivery.objects.filter(kind__in=[DeliveryKind.REMINDER, DeliveryKind.CHECKIN])
    checkin = CheckIn.objects.get(checkpoint=checkpoint)
    assert delivery.context["items"] == [f"reminder:{dxa.pk}:1", f"checkin:{checkin.pk}:1"]
    [message] = smtp_settings.messages
    clinic = dxa.procedure.patient.clinic
    assert message["Subject"] == f"Your check-in and a reminder from {clinic.name}"
    assert not any(word in message["Subject"].lower() for word in CLINICAL_WORDS)
    body = plain_text(message)
    protocol = get_protocol(dxa.protocol_version)
    for code in ("CP-06", "CP-03"):
        title, text = protocol.patient_wording(code)
        assert title in body and text in body
    assert f"{settings.SITE_URL}/c/" in body
    checkin.refresh_from_db()
    dxa.refresh_from_db()
    assert checkin.invitations_sent == 1 and dxa.reminders_sent == 1


@pytest.mark.django_db
def test_an_item_due_after_its_days_email_went_goes_with_the_next_days_and_nothing_twice(make_procedure, smtp_settings):
    moment = at_utc(2026, 3, 20, 9)
    dxa, checkpoint = same_day_pair(make_procedure, moment)
    Checkpoint.objects.filter(pk=checkpoint.pk).update(next_reminder_at=moment + timedelta(hours=5))

    sweep_reminders(now=moment)
    send_pending(moment + timedelta(minutes=5))  # the day's e-mail goes with the reminder alone
    later = moment + timedelta(hours=5)
    sweep_reminders(now=later)
    sweep_checkins(now=later)  # the check-in finds the day's e-mail gone: it waits for the next day
    sweep_reminders(now=later + timedelta(minutes=1))
    sweep_checkins(now=later + timedelta(minutes=1))
    send_pending(later + timedelta(minutes=5))
    assert len(smtp_settings.messages) == 1

    checkin = CheckIn.objects.get(checkpoint=checkpoint)
    assert checkin.invitations_sent == 0 and checkin.next_action_at == at_utc(2026, 3, 21, 9)
    sweep_checkins(now=at_utc(2026, 3, 21, 9))
    send_pending(at_utc(2026, 3, 21, 9, 5))

    items = [item for context in Delivery.objects.values_list("context", flat=True) for item in context["items"]]
    assert sorted(items) == sorted([f"reminder:{dxa.pk}:1", f"checkin:{checkin.pk}:1"])
    first, second = smtp_settings.messages
    assert first["Subject"] == f"A reminder from {dxa.procedure.patient.clinic.name}"
    assert second["Subject"] == f"Your check-in from {dxa.procedure.patient.clinic.name}"
    assert "/c/" not in plain_text(first) and protocol_title(dxa) not in plain_text(second)


def protocol_title(checkpoint) -> str:
    return get_protocol(checkpoint.protocol_version).patient_wording(checkpoint.code)[0]


@pytest.mark.hazard("HAZ-51")
@pytest.mark.django_db
def test_a_safety_checkin_is_never_held_or_merged_with_the_days_email(make_procedure, smtp_settings):
    moment = at_utc(2026, 3, 3, 9)
    with time_machine.travel(at_utc(2026, 3, 2, 12), tick=False):
        procedure = make_procedure(performed_on=DAY0, fracture_diagnosed_on=date(2026, 2, 20))
    safety, dxa = cp(procedure, "CP-01"), cp(procedure, "CP-06")
    Checkpoint.objects.filter(pk__in=[safety.pk, dxa.pk]).update(next_reminder_at=moment)

    sweep_reminders(now=moment)
    sweep_checkins(now=moment)

    checkin = CheckIn.objects.get(checkpoint=safety)
    alone = Delivery.objects.get(checkin=checkin)
    assert alone.next_attempt_at == moment, "a safety invitation is not held"
    assert alone.context["items"] == [f"checkin:{checkin.pk}:1"] and alone.context[UNCAPPED]
    day = Delivery.objects.exclude(pk=alone.pk).get()
    assert day.context["items"] == [f"reminder:{dxa.pk}:1"]
    send_pending(moment + timedelta(minutes=5))
    assert len(smtp_settings.messages) == 2
