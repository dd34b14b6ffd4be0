"""Reminders: written once per due moment, sent at the right local instant, never to the wrong patient."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection

from alerts.messages import REMINDER_SUBJECT
from alerts.models import Delivery, DeliveryState
from alerts.outbox import deliver
from alerts.reminders import sweep_reminders
from patients.models import Checkpoint, CheckpointState
from patients.services import complete_checkpoint, update_patient


def at_utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cp(procedure, code, sequence=1) -> Checkpoint:
    return Checkpoint.objects.get(procedure=procedure, code=code, sequence=sequence)


def reminders_for(checkpoint) -> list[Delivery]:
    return list(Delivery.objects.filter(checkpoint=checkpoint).order_by("id"))


def dxa_procedure(make_procedure, *, dxa_target: date, **fields):
    """A procedure in London whose DXA reminder (CP-06, fracture + 70 days) falls on `dxa_target`."""
    fracture = dxa_target - timedelta(days=70)
    performed = fracture + timedelta(days=2)
    with time_machine.travel(datetime(performed.year, performed.month, performed.day, 12, tzinfo=UTC), tick=False):
        return make_procedure(performed_on=performed, fracture_diagnosed_on=fracture, **fields)


@pytest.fixture
def march_procedure(make_procedure):
    """CP-06 falls on 29 March 2026, the day London's clocks go forward."""
    return dxa_procedure(make_procedure, dxa_target=date(2026, 3, 29))


@pytest.mark.django_db
def test_reminder_due_at_nine_local_on_the_spring_forward_day_is_written_once_at_eight_utc(march_procedure):
    checkpoint = cp(march_procedure, "CP-06")
    assert checkpoint.due_at == at_utc(2026, 3, 29, 8, 0)  # 09:00 BST

    sweep_reminders(now=at_utc(2026, 3, 29, 7, 59))
    assert reminders_for(checkpoint) == []

    sweep_reminders(now=at_utc(2026, 3, 29, 8, 0))
    sweep_reminders(now=at_utc(2026, 3, 29, 8, 1))
    assert len(reminders_for(checkpoint)) == 1


@pytest.mark.django_db
def test_reminder_due_at_nine_local_on_the_fall_back_day_is_written_at_nine_utc(make_procedure):
    procedure = dxa_procedure(make_procedure, dxa_target=date(2026, 10, 25))
    checkpoint = cp(procedure, "CP-06")

    sweep_reminders(now=at_utc(2026, 10, 25, 8, 59))
    assert reminders_for(checkpoint) == []
    sweep_reminders(now=at_utc(2026, 10, 25, 9, 0))
    assert len(reminders_for(checkpoint)) == 1


@pytest.mark.django_db
def test_reminder_repeats_at_its_cadence_while_open_and_stops_at_its_maximum(march_procedure):
    checkpoint = cp(march_procedure, "CP-06")  # every 7 days, at most 2, window to 12 April

    for day in range(29, 29 + 15):
        moment = at_utc(2026, 3, 29, 8, 0) + timedelta(days=day - 29)
        sweep_reminders(now=moment)

    items = [delivery.context["items"] for delivery in reminders_for(checkpoint)]
    assert items == [[f"reminder:{checkpoint.pk}:1"], [f"reminder:{checkpoint.pk}:2"]]
    checkpoint.refresh_from_db()
    assert checkpoint.next_reminder_at is None
    assert checkpoint.state == CheckpointState.DUE


@pytest.mark.django_db
def test_completing_a_checkpoint_stops_its_reminders_and_cancels_one_still_pending(march_procedure):
    checkpoint = cp(march_procedure, "CP-06")
    sweep_reminders(now=at_utc(2026, 3, 29, 8, 0))
    pending = reminders_for(checkpoint)[0]

    with time_machine.travel(at_utc(2026, 3, 29, 8, 5), tick=False):
        complete_checkpoint(checkpoint=checkpoint, dxa_t_score=-1.5, dxa_date=date(2026, 3, 28))
        outcome = deliver(delivery_id=pending.pk)
    sweep_reminders(now=at_utc(2026, 4, 5, 8, 0))

    assert outcome.state == DeliveryState.CANCELLED
    assert mail.outbox == []
    assert len(reminders_for(checkpoint)) == 1


@pytest.mark.django_db
def test_patient_without_email_consent_gets_nothing_and_the_checkpoint_says_why(make_patient, make_procedure):
    procedure = dxa_procedure(make_procedure, dxa_target=date(2026, 3, 29), patient=make_patient(email_consent=False))

    sweep_reminders(now=at_utc(2026, 3, 29, 8, 0))

    checkpoint = cp(procedure, "CP-06")
    assert reminders_for(checkpoint) == []
    assert checkpoint.reminder_blocked == "no e-mail consent"
    assert checkpoint.next_reminder_at is None


@pytest.mark.django_db
def test_deceased_patient_gets_nothing(march_procedure):
    with time_machine.travel(at_utc(2026, 3, 28, 18), tick=False):
        update_patient(patient=march_procedure.patient, status="deceased")

    for day in range(0, 20):
        sweep_reminders(now=at_utc(2026, 3, 20, 8, 0) + timedelta(days=day))

    assert not Delivery.objects.exists()
    assert not Checkpoint.objects.open().filter(procedure=march_procedure).exists()


@pytest.mark.django_db
def test_reminder_caught_up_in_quiet_hours_waits_until_they_end(march_procedure):
    checkpoint = cp(march_procedure, "CP-06")

    sweep_reminders(now=at_utc(2026, 3, 29, 20, 30))  # 21:30 BST: quiet hours (20:00–08:00)

    checkpoint.refresh_from_db()
    assert reminders_for(checkpoint) == []
    assert checkpoint.next_reminder_at == at_utc(2026, 3, 30, 7, 0)  # 08:00 BST


@pytest.mark.django_db
def test_reminder_email_has_a_neutral_subject_no_identifiers_and_no_calendar_file_unbooked(
    make_patient, make_procedure
):
    patient = make_patient(given_name="Zebedee", family_name="Quartermaine", mrn="SENTINEL-MRN-42")
    with time_machine.travel(at_utc(2026, 1, 1, 12), tick=False):
        procedure = make_procedure(patient=patient, performed_on=date(2026, 1, 1), fracture_diagnosed_on=None)
    visit = cp(procedure, "CP-04")  # a clinician visit, not booked: no .ics

    sweep_reminders(now=visit.due_at)
    deliver(delivery_id=reminders_for(visit)[0].pk)

    [message] = mail.outbox
    assert message.subject == REMINDER_SUBJECT.format(clinic=procedure.patient.clinic.name)
    text = message.body + message.alternatives[0][0]
    for secret in ("Zebedee", "Quartermaine", "SENTINEL-MRN-42", patient.birth_date.isoformat()):
        assert secret not in message.subject
        assert secret not in text
    assert procedure.patient.clinic.phone in text
    assert "call emergency services" in message.body
    assert message.attachments == []


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_and_a_rerun_write_each_reminder_exactly_once(make_procedure):
    procedures = [dxa_procedure(make_procedure, dxa_target=date(2026, 3, 2)) for _ in range(30)]
    now = at_utc(2026, 3, 2, 9, 0)
    barrier = threading.Barrier(2)
    errors = []

    def sweep():
        try:
            barrier.wait()
            sweep_reminders(now=now, batch_size=7)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sweep_reminders(now=now)

    assert errors == []
    due = Checkpoint.objects.filter(procedure__in=procedures, code="CP-06")
    assert Delivery.objects.filter(checkpoint__in=due).count() == 30
    items = [item for context in Delivery.objects.values_list("context", flat=True) for item in context["items"]]
    assert sorted(items) == sorted(f"reminder:{c.pk}:1" for c in due)


@pytest.mark.django_db
def test_transient_smtp_failure_is_retried_with_backoff_and_a_permanent_one_is_marked_failed(
    march_procedure, smtp_settings
):
    sweep_reminders(now=at_utc(2026, 3, 29, 8, 0))
    delivery = Delivery.objects.get()
    smtp_settings.fail(1)

    first = deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert first.state == DeliveryState.PENDING
    assert 15 <= first.retry_in <= 30
    assert delivery.next_attempt_at > delivery.updated_at - timedelta(seconds=1)
    assert "451" in delivery.last_error

    assert deliver(delivery_id=delivery.pk).state == "skipped", "not before its backoff has run out"
    second = deliver(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    assert second.state == DeliveryState.SENT
    assert len(smtp_settings.messages) == 1

    other = Delivery.objects.create(
        kind="reminder",
        cause="reminder:test:permanent",
        recipient="x@example.invalid",
        clinic=delivery.clinic,
        checkpoint=delivery.checkpoint,
        patient=delivery.patient,
        next_attempt_at=delivery.next_attempt_at,
    )
    smtp_settings.fail(1, "550 5.1.1 No such mailbox")
    assert deliver(delivery_id=other.pk, now=other.next_attempt_at).state == DeliveryState.FAILED
    other.refresh_from_db()
    assert other.state == DeliveryState.FAILED and "550" in other.last_error


@pytest.mark.django_db
def test_a_delivery_already_claimed_is_not_sent_again(march_procedure):
    sweep_reminders(now=at_utc(2026, 3, 29, 8, 0))
    delivery = Delivery.objects.get()

    assert deliver(delivery_id=delivery.pk).state == DeliveryState.SENT
    assert deliver(delivery_id=delivery.pk).state == "skipped"
    assert len(mail.outbox) == 1
