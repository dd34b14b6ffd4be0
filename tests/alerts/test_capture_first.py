"""Capture first (spec v0.2 §1 capture rules): a red flag answered with nothing else is saved,
evaluated and paged at once, from the patient's form and from the coordinator's phone entry; the
rest is asked for afterwards and is optional; an expired session keeps the answers."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse

from alerts.models import Alert, AlertState, CheckInState, Delivery, DeliveryKind, SymptomReport
from alerts.rules import get_rules
from patients.protocol import get_protocol
from tests.builders import PERFORMED_ON

RULES = get_rules("2026.1")
FORM_SESSION = get_protocol("2026.1").link_lifetime("checkin_form")
FORM, DONE, MORE = "/checkin/", "/checkin/done/", "/checkin/more/"
PHONE = reverse("admin:alerts_symptomreport_phone")
# The spec's sentence (§5) with the clinic's own emergency number (Clinic.emergency_number) as the local number.
SPEC_EMERGENCY = "Call emergency services now (999). Do not wait for a reply from us."


def visible_text(response) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


def question_order(response) -> list[str]:
    return list(dict.fromkeys(re.findall(r'<input type="radio" name="([^"]+)"', response.content.decode())))


@pytest.mark.hazard("HAZ-01")
@pytest.mark.django_db
def test_red_flag_questions_come_first_and_none_is_marked_required(client, invite):
    invitation = invite()
    client.get(invitation.path)

    form = client.get(FORM)

    order = question_order(form)
    assert order[: len(RULES.red_flags)] == [flag.id for flag in RULES.red_flags]
    assert not re.search(r"<input[^>]*\brequired\b", form.content.decode())


@pytest.mark.hazard("HAZ-01")
@pytest.mark.django_db
def test_one_red_flag_yes_and_nothing_else_alerts_pages_and_shows_the_emergency_instruction_at_once(
    client, invite, make_patient, clinician
):
    invitation = invite(make_patient(responsible_clinician=clinician))
    client.get(invitation.path)

    response = client.post(FORM, {"RF-02": "yes"})

    assert response.status_code == 302 and response.url == DONE
    report = SymptomReport.objects.get(checkin=invitation.checkin)
    assert report.red_flags == ["RF-02"] and report.pain_now is None
    assert "pain_now" in report.unanswered and "RF-01" in report.unanswered and "RF-02" not in report.unanswered
    alert = Alert.objects.get(patient=invitation.checkin.patient)
    assert (alert.code, alert.tier, alert.state) == ("RF-02", "emergency", AlertState.OPEN)
    page = Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT)
    assert page.recipient_user == clinician
    done = client.get(DONE)
    tap_to_call = '<a class="call" href="tel:999">999</a>'
    assert SPEC_EMERGENCY.replace("999", tap_to_call) in done.content.decode()
    assert "optional" in visible_text(done)
    invitation.checkin.refresh_from_db()
    assert invitation.checkin.state == CheckInState.ANSWERED


@pytest.mark.hazard("HAZ-01")
@pytest.mark.django_db
def test_the_rest_is_asked_for_afterwards_is_optional_and_never_pages_twice(client, invite, make_patient, clinician):
    invitation = invite(make_patient(responsible_clinician=clinician))
    client.get(invitation.path)
    client.post(FORM, {"RF-02": "yes"})
    report = SymptomReport.objects.get(checkin=invitation.checkin)

    more = client.get(MORE)
    assert more.status_code == 200
    assert "RF-02" not in question_order(more) and "pain_now" in question_order(more)
    assert client.post(MORE, {"pain_now": "6", "RF-06": "yes", "doing_physio": "no"}).status_code == 302

    report.refresh_from_db()
    assert (report.pain_now, report.doing_physio) == (6, False)
    assert report.red_flags == ["RF-02", "RF-06"]
    assert "pain_now" not in report.unanswered and "RF-06" not in report.unanswered and "RF-01" in report.unanswered
    assert sorted(Alert.objects.values_list("code", flat=True)) == ["RF-02", "RF-06"]
    assert Delivery.objects.filter(alert__code="RF-02", kind=DeliveryKind.ALERT).count() == 1
    assert [f["code"] for f in report.findings] == ["RF-02", "RF-06"]


@pytest.mark.django_db
def test_a_form_with_no_answer_at_all_asks_for_one_and_saves_nothing(client, invite):
    invitation = invite()
    client.get(invitation.path)

    response = client.post(FORM, {})

    assert response.status_code == 400
    assert "at least one question" in visible_text(response)
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-01")
@pytest.mark.django_db
def test_a_phone_entry_with_only_a_red_flag_is_saved_and_pages(
    client, coordinator, clinician, clock, make_patient, make_procedure
):
    procedure = make_procedure(patient=make_patient(responsible_clinician=clinician), performed_on=PERFORMED_ON)
    client.force_login(coordinator)

    response = client.post(PHONE, {"procedure": str(procedure.pk), "reported_at": "2026-03-10T08:30", "RF-01": "yes"})

    assert response.status_code == 302, response.context["form"].errors
    report = SymptomReport.objects.get(procedure=procedure)
    assert (report.source, report.red_flags, report.pain_now) == ("phone", ["RF-01"], None)
    assert "pain_now" in report.unanswered
    alert = Alert.objects.get(patient=procedure.patient)
    assert (alert.code, alert.tier) == ("RF-01", "emergency")
    assert Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT).recipient_user == clinician


@pytest.mark.hazard("HAZ-04")
@pytest.mark.django_db
def test_an_expired_sessions_submit_keeps_every_answer_and_asks_only_to_confirm(
    client, invite, make_patient, clinician, clock
):
    invitation = invite(make_patient(responsible_clinician=clinician))
    client.get(invitation.path)
    page = client.get(FORM).content.decode()
    resume = re.search(r'name="resume" value="([^"]+)"', page).group(1)
    clock.shift(FORM_SESSION + timedelta(seconds=60))
    answers = {"resume": resume, "RF-02": "no", "pain_now": "7"}  # no red flag: it all waits (HAZ-42)

    kept = client.post(FORM, answers)

    assert kept.status_code == 200
    assert "Your answers are kept" in visible_text(kept)
    html = kept.content.decode()
    assert re.search(r'<input type="radio" name="RF-02" value="no"[^>]*checked', html)
    assert re.search(r'<input type="radio" name="pain_now" value="7"[^>]*checked', html)
    assert not SymptomReport.objects.exists()
    confirmed = client.post(FORM, answers)
    assert confirmed.status_code == 302 and confirmed.url == DONE
    report = SymptomReport.objects.get(checkin=invitation.checkin)
    assert (report.red_flags, report.pain_now) == ([], 7)
    assert "RF-02" not in report.unanswered


@pytest.mark.hazard("HAZ-04")
@pytest.mark.django_db
def test_an_expired_session_page_gives_the_clinics_phone(client, invite, clinic, clock):
    invitation = invite()
    client.get(invitation.path)
    clock.shift(FORM_SESSION + timedelta(seconds=60))

    response = client.get(FORM)

    assert response.status_code == 403
    assert clinic.phone in visible_text(response)
    assert "call emergency services" in visible_text(response)


@pytest.mark.django_db
def test_a_forged_resume_field_gives_no_checkin(client, invite):
    invite()

    response = client.post(FORM, {"resume": "1:forged", "RF-02": "yes"})

    assert response.status_code == 403
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-20")
@pytest.mark.django_db
def test_a_fall_answered_on_the_form_alone_raises_rf10_and_pages(client, invite, make_patient, clinician):
    invitation = invite(make_patient(responsible_clinician=clinician))
    page = client.get(client.get(invitation.path).url).content.decode()
    assert "fell_since_last" not in page  # falls are asked once, by RF-10, among the red flags

    assert client.post(FORM, {"step": "1", "RF-10": "yes"}).status_code == 302

    alert = Alert.objects.get(patient=invitation.checkin.patient)
    assert (alert.code, alert.tier) == ("RF-10", "urgent")
    assert Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT).recipient_user == clinician


@pytest.mark.hazard("HAZ-20")
@pytest.mark.django_db
def test_a_fall_sent_by_an_ehr_as_fell_since_last_raises_rf10(make_procedure, clinician, make_patient):
    from alerts.reports import submit_report

    procedure = make_procedure(patient=make_patient(responsible_clinician=clinician))
    submit_report(procedure=procedure, source="api", fell_since_last=True)

    alert = Alert.objects.get(patient=procedure.patient)
    assert (alert.code, alert.tier) == ("RF-10", "urgent")
    assert alert.answers["also"] == {"fell_since_last": "yes"}


@pytest.mark.hazard("HAZ-21")
@pytest.mark.django_db
def test_not_sure_whether_concerns_are_heard_opens_a_review(client, invite):
    from alerts.models import ReviewTask

    invitation = invite()
    client.get(invitation.path)

    assert client.post(FORM, {"SO-2": "unsure"}).status_code == 302

    task = ReviewTask.objects.get(patient=invitation.checkin.patient)
    assert (task.code, task.tier) == ("SO-2", "routine")
