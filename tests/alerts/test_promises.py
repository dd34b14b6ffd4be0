"""What a patient is promised is what the clinic can keep: response times from the clinic's working
days, hours and holidays in its time zone, reviews that exist before they are promised, and the
clinic's own emergency number with a tap-to-call link."""

import re
from datetime import UTC, date, datetime, time
from html import unescape

import pytest

from alerts.models import CheckIn, Delivery, DeliveryKind, ReviewTask
from alerts.outbox import deliver
from alerts.promises import promises_for
from alerts.reminders import sweep_reminders
from alerts.reports import submit_report
from alerts.rules import get_rules
from patients.models import Checkpoint, Clinic, ClinicHoliday
from patients.services import WorkingTime
from tests.builders import CHECKIN_DUE, form_answers, make_clinic

RULES = get_rules("2026.1")
WORDING = RULES.wording
DONE = "/checkin/done/"
# Saturday 14 March 2026, 23:00 in London (GMT, before the clocks change on 29 March).
SATURDAY_NIGHT_LONDON = datetime(2026, 3, 14, 23, 0, tzinfo=UTC)


def visible_text(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def answer_at(client, clock, invitation, moment: datetime, **overrides):
    """The patient opens the e-mail's link and sends the form at `moment`; returns the confirmation page."""
    clock.move_to(moment)
    assert client.get(invitation.path).status_code == 302
    assert client.post("/checkin/", form_answers(**overrides)).status_code == 302
    return client.get(DONE)


# --- Working time --------------------------------------------------------------------------------


@pytest.mark.hazard("HAZ-33")
def test_working_days_skip_the_weekend_and_a_holiday():
    """Friday + 2 working days is Tuesday; with that Monday a holiday it is Wednesday."""
    week = WorkingTime(
        zone="Europe/London",
        working_days=frozenset(range(5)),
        opens_at=time(9),
        closes_at=time(17),
        holidays=frozenset(),
    )
    friday = date(2026, 3, 13)
    assert week.working_days_after(friday, 1) == date(2026, 3, 16)
    assert week.working_days_after(friday, 2) == date(2026, 3, 17)

    with_holiday = WorkingTime(**{**week.__dict__, "holidays": frozenset({date(2026, 3, 16)})})
    assert with_holiday.working_days_after(friday, 1) == date(2026, 3, 17)
    assert with_holiday.working_days_after(friday, 2) == date(2026, 3, 18)
    assert with_holiday.end_of_working_days(datetime(2026, 3, 13, 10, tzinfo=UTC), 2) == datetime(
        2026, 3, 18, 17, tzinfo=UTC
    )


@pytest.mark.hazard("HAZ-33")
def test_opening_hours_are_read_in_the_clinics_time_zone():
    """23:00 on a Saturday in London is already Sunday in Sydney; both are closed until Monday 09:00
    local, which is a different instant in each."""
    london = WorkingTime("Europe/London", frozenset(range(5)), time(9), time(17), frozenset())
    sydney = WorkingTime("Australia/Sydney", frozenset(range(5)), time(9), time(17), frozenset())

    assert not london.is_open(SATURDAY_NIGHT_LONDON)
    assert london.next_opening(SATURDAY_NIGHT_LONDON) == datetime(2026, 3, 16, 9, tzinfo=UTC)
    # Sydney is UTC+11 in March: Monday 16 March 09:00 there is Sunday 15 March 22:00 UTC.
    assert sydney.next_opening(SATURDAY_NIGHT_LONDON) == datetime(2026, 3, 15, 22, tzinfo=UTC)
    tuesday_ten = datetime(2026, 3, 10, 10, tzinfo=UTC)
    assert london.is_open(tuesday_ten) and london.next_opening(tuesday_ten) == tuesday_ten


@pytest.mark.django_db
def test_a_clinic_is_refused_with_no_working_day_or_hours_the_wrong_way_round(clinic):
    clinic.working_days, clinic.opens_at, clinic.closes_at = [], time(17), time(9)

    with pytest.raises(Exception) as excinfo:
        clinic.full_clean()

    assert set(excinfo.value.message_dict) >= {"closes_at"}
    clinic.opens_at, clinic.closes_at = time(9), time(17)
    with pytest.raises(Exception) as excinfo:
        clinic.full_clean()
    assert "working_days" in excinfo.value.message_dict


# --- The patient's wording -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-33")
def test_urgent_at_23_on_a_saturday_in_london_names_monday_not_today(client, clock, invite):
    invitation = invite()

    text = visible_text(answer_at(client, clock, invitation, SATURDAY_NIGHT_LONDON, **{"RF-06": "yes"}))

    assert WORDING["urgent"] not in text
    assert "today" not in text
    assert WORDING["urgent_later"].format(day="Monday 16 March", time="09:00") in text
    assert WORDING["worse"] in text


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-33")
def test_urgent_in_working_hours_says_today(client, clock, invite):
    invitation = invite()

    text = visible_text(answer_at(client, clock, invitation, datetime(2026, 3, 12, 11, tzinfo=UTC), **{"RF-06": "yes"}))

    assert WORDING["urgent"] in text


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-33")
def test_a_holiday_monday_moves_both_promises_and_the_review_is_due_when_the_patient_was_told(
    client, clock, invite, clinic
):
    ClinicHoliday.objects.create(clinic=clinic, day=date(2026, 3, 16), name="Closure")
    invitation = invite()

    text = visible_text(answer_at(client, clock, invitation, SATURDAY_NIGHT_LONDON, **{"RF-06": "yes", "SO-2": "no"}))

    assert WORDING["urgent_later"].format(day="Tuesday 17 March", time="09:00") in text
    task = ReviewTask.objects.get(patient=invitation.checkin.patient, code="SO-2")
    # Tuesday and Wednesday are the two working days; the review is due at Wednesday's closing time.
    assert task.due_at == datetime(2026, 3, 18, 17, tzinfo=UTC)


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-33")
def test_routine_wording_names_the_day_its_review_is_due(client, clock, invite):
    invitation = invite()

    text = visible_text(answer_at(client, clock, invitation, SATURDAY_NIGHT_LONDON, **{"SO-2": "unsure"}))

    task = ReviewTask.objects.get(patient=invitation.checkin.patient, code="SO-2")
    assert task.due_at == datetime(2026, 3, 17, 17, tzinfo=UTC)  # Monday, Tuesday: Tuesday 17:00
    assert WORDING["routine"].format(day="Tuesday 17 March") in text
    assert "2 working days" not in text


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-32")
def test_the_day_14_early_warning_opens_the_routine_review_it_promises(clock, make_procedure):
    procedure = make_procedure(performed_on=date(2026, 3, 1), fracture_diagnosed_on=date(2026, 2, 20))
    clock.move_to(datetime(2026, 3, 15, 10, 5, tzinfo=UTC))
    moment = datetime(2026, 3, 15, 10, tzinfo=UTC)  # day 14, a Sunday

    report = submit_report(procedure=procedure, source="phone", pain_now=5, reported_at=moment)

    [task] = ReviewTask.objects.filter(patient=procedure.patient)
    assert (task.code, task.tier, task.state, task.report_id) == ("PAIN_DAY14", "routine", "open", report.pk)
    assert task.due_at == datetime(2026, 3, 17, 17, tzinfo=UTC)
    assert CheckIn.objects.filter(patient=procedure.patient, reason="PAIN_DAY14").count() == 1


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-32")
def test_the_day_14_warning_page_promises_the_review_that_exists(client, clock, invite, make_patient):
    invitation = invite()
    day_14 = datetime(2026, 3, 23, 10, tzinfo=UTC)  # procedure on 9 March; a Monday
    clock.move_to(day_14)

    report = submit_report(procedure=invitation.checkin.procedure, source="api", pain_now=6)

    task = ReviewTask.objects.get(report=report)
    promise = promises_for(invitation.checkin.patient.clinic, RULES, now=day_14)
    assert task.due_at == promise.routine_due_at == datetime(2026, 3, 25, 17, tzinfo=UTC)


# --- The emergency number ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-34")
def test_the_form_and_confirmation_show_the_clinics_own_emergency_number_as_a_tap_to_call_link(
    client, clock, invite, clinic
):
    clinic.emergency_number = "112"
    clinic.save()
    invitation = invite()

    assert client.get(invitation.path).status_code == 302
    form = client.get("/checkin/").content.decode()
    client.post("/checkin/", form_answers(**{"RF-02": "yes"}))
    done = client.get(DONE).content.decode()

    for page in (form, done):
        assert '<a class="call" href="tel:112">112</a>' in page
        assert "911" not in page and "999" not in page
    assert WORDING["emergency"].format(number='<a class="call" href="tel:112">112</a>') in done


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-34")
def test_the_invitation_email_and_the_already_answered_page_carry_the_clinics_number(client, invite):
    invitation = invite()
    assert WORDING["emergency"].format(number="999") in invitation.message.body
    assert 'href="tel:999"' in invitation.message.alternatives[0][0]
    assert client.get(invitation.path).status_code == 302
    client.post("/checkin/", form_answers())

    again = client.get(invitation.path)

    assert again.status_code == 410
    assert 'If you feel very unwell, call emergency services now on <a class="call" href="tel:999">999</a>.' in (
        again.content.decode()
    )


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-34")
def test_a_clinic_without_a_number_gets_no_invented_one_and_the_admin_form_requires_it(clinic):
    nowhere = make_clinic(name="No Number", slug="no-number", emergency_number="")

    promise = promises_for(nowhere, RULES, now=CHECKIN_DUE)

    assert promise.emergency == WORDING["emergency_no_number"]
    assert not re.search(r"\d", promise.emergency)
    with pytest.raises(Exception) as excinfo:
        nowhere.full_clean()
    assert "emergency_number" in excinfo.value.message_dict
    assert Clinic._meta.get_field("emergency_number").has_default() is False


@pytest.mark.django_db
def test_a_clinic_admin_edits_hours_and_holidays_of_their_own_clinic_only(client, clinic, other_clinic):
    from tests.builders import make_staff

    admin_user = make_staff(username="clinic-admin", clinic=clinic, role="clinic_admin")
    client.force_login(admin_user)
    own = client.get(f"/admin/patients/clinic/{clinic.pk}/change/")
    other = client.get(f"/admin/patients/clinic/{other_clinic.pk}/change/")

    assert own.status_code == 200
    page = own.content.decode()
    assert 'name="emergency_number"' in page and 'name="holidays-TOTAL_FORMS"' in page
    assert 'name="working_days"' in page and 'name="opens_at"' in page
    assert other.status_code != 200
    response = client.post(
        f"/admin/patients/clinic/{clinic.pk}/change/",
        {
            **{key: value for key, value in _clinic_form(clinic).items()},
            "holidays-TOTAL_FORMS": "1",
            "holidays-INITIAL_FORMS": "0",
            "holidays-0-day": "2026-12-25",
            "holidays-0-name": "Christmas Day",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(clinic.holidays.values_list("day", flat=True)) == [date(2026, 12, 25)]


def _clinic_form(clinic) -> dict:
    membership = clinic.memberships.get()
    return {
        "name": clinic.name,
        "slug": clinic.slug,
        "time_zone": clinic.time_zone,
        "phone": clinic.phone,
        "email": clinic.email,
        "protocol_version": clinic.protocol_version,
        "quiet_hours_start": "20:00",
        "quiet_hours_end": "08:00",
        "digest_time": "07:30",
        "emergency_number": "999",
        "working_days": "0,1,2,3,4",
        "opens_at": "09:00",
        "closes_at": "17:00",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": str(membership.pk),
        "memberships-0-clinic": str(clinic.pk),
        "memberships-0-user": str(membership.user_id),
        "memberships-0-role": membership.role,
    }


def test_every_response_promise_and_wording_is_protocol_data_with_its_source():
    assert RULES.responses["routine_working_days"] == 2
    assert "[DESIGN]" in RULES.responses["source"]
    for key in ("emergency", "urgent_later", "routine"):
        assert "{" in WORDING[key]
    assert "911/112/999" not in WORDING["emergency"]


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-34")
def test_a_visit_reminder_names_the_clinics_emergency_number(clock, make_procedure, mailoutbox):
    procedure = make_procedure(performed_on=date(2026, 3, 9), fracture_diagnosed_on=date(2026, 3, 1))
    visit = Checkpoint.objects.get(procedure=procedure, code="CP-04")
    clock.move_to(visit.next_reminder_at)

    sweep_reminders(now=visit.next_reminder_at)
    delivery = Delivery.objects.get(checkpoint=visit, kind=DeliveryKind.REMINDER)
    deliver(delivery_id=delivery.pk, now=delivery.next_attempt_at)  # a day's message waits for the day's others

    [message] = mailoutbox
    assert "In an emergency call 999." in message.body
    assert '<a href="tel:999">999</a>' in message.alternatives[0][0]
