"""A red flag is kept whatever else happens to the submit: beside an answer that cannot be read
(HAZ-41), after the form's session expired (HAZ-42), for a patient out of follow-up (HAZ-43), and for a
check-in cancelled while the patient filled it in (HAZ-46)."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages

from alerts.checkins import sweep_checkins
from alerts.models import Alert, AlertEvent, CheckIn, CheckInState, Delivery, DeliveryKind, SymptomReport
from patients.models import PatientStatus
from patients.services import update_patient
from tests.alerts.test_capture_first import DONE, FORM, FORM_SESSION, MORE, PHONE, SPEC_EMERGENCY, visible_text
from tests.builders import PERFORMED_ON, form_answers

pytestmark = pytest.mark.django_db
EMERGENCY = SPEC_EMERGENCY.replace("999", '<a class="call" href="tel:999">999</a>')


@pytest.fixture
def opened(client, invite, make_patient, clinician):
    """A check-in whose form the patient has open, and the signed reference its page carries."""
    invitation = invite(make_patient(responsible_clinician=clinician))
    client.get(invitation.path)
    page = client.get(FORM).content.decode()
    invitation.resume = re.search(r'name="resume" value="([^"]+)"', page).group(1)
    return invitation


def paged(patient) -> Alert:
    """The patient's one alert, after checking its page to the clinician was written."""
    alert = Alert.objects.get(patient=patient)
    assert Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).count() == 1
    return alert


def dropped(report) -> dict[str, str]:
    return {note["field"]: note["reason"] for note in report.notes if note["code"] == "dropped_answer"}


@pytest.mark.hazard("HAZ-41")
def test_a_red_flag_beside_a_forged_answer_is_saved_and_paged_and_the_forged_answer_is_named(client, opened):
    answers = form_answers(**{"RF-02": "yes", "pain_now": "99", "SO-2": "maybe", "wearing_brace": "sometimes"})

    response = client.post(FORM, answers)

    assert response.status_code == 302 and response.url == DONE
    report = SymptomReport.objects.get(checkin=opened.checkin)
    assert report.red_flags == ["RF-02"] and report.pain_now is None and report.wearing_brace is None
    assert report.pain_average_24h == 3 and report.doing_physio is True  # the readable answers are kept
    assert dropped(report) == {
        "SO-2": "Not one of the allowed answers.",
        "pain_now": "Not a whole number from 0 to 10.",
        "wearing_brace": "Not one of the allowed answers.",
    }
    assert {"pain_now", "SO-2", "wearing_brace"} <= set(report.unanswered)
    assert "99" not in str(report.notes) and "maybe" not in str(report.notes)
    assert paged(opened.checkin.patient).code == "RF-02"
    done = visible_text(client.get(DONE))
    assert "Call emergency services now" in done
    assert "could not be read" in done and "How bad is your back pain right now?" in done
    assert "Answer the other questions" in done


@pytest.mark.hazard("HAZ-41")
def test_a_forged_answer_with_no_red_flag_is_still_refused_and_saves_nothing(client, opened):
    response = client.post(FORM, form_answers(pain_now="99"))

    assert response.status_code == 400 and "pain_now" in response.context["form"].errors
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-41")
def test_a_phone_entry_with_a_red_flag_and_an_out_of_range_pain_saves_the_red_flag_and_says_what_was_not(
    client, coordinator, clinician, clock, make_patient, make_procedure
):
    procedure = make_procedure(patient=make_patient(responsible_clinician=clinician), performed_on=PERFORMED_ON)
    client.force_login(coordinator)
    answers = {"procedure": str(procedure.pk), "reported_at": "2026-03-10T08:30", **form_answers(pain_now="11")}

    response = client.post(PHONE, {**answers, "RF-01": "yes"})

    assert response.status_code == 302
    report = SymptomReport.objects.get(procedure=procedure)
    assert (report.source, report.red_flags, report.pain_now) == ("phone", ["RF-01"], None)
    assert dropped(report) == {"pain_now": "Not a whole number from 0 to 10."}
    assert paged(procedure.patient).code == "RF-01"
    words = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("could not be read" in text and "back pain right now" in text for text in words), words


@pytest.mark.hazard("HAZ-42")
def test_an_expired_sessions_red_flag_is_paged_at_once_and_only_the_rest_waits_for_confirmation(client, opened, clock):
    clock.shift(FORM_SESSION + timedelta(seconds=60))

    kept = client.post(FORM, {"resume": opened.resume, "RF-02": "yes", "RF-01": "no", "pain_now": "7"})

    assert kept.status_code == 200
    report = SymptomReport.objects.get(checkin=opened.checkin)
    assert report.red_flags == ["RF-02"] and report.pain_now is None
    assert "RF-01" not in report.unanswered and "pain_now" in report.unanswered
    alert = paged(opened.checkin.patient)
    assert (alert.code, alert.tier) == ("RF-02", "emergency")
    text = visible_text(kept)
    assert EMERGENCY in kept.content.decode() and "press “Send my answers” to confirm" in text
    html = kept.content.decode()
    assert f'action="{MORE}"' in html
    assert re.search(r'<input type="radio" name="pain_now" value="7"[^>]*checked', html)
    assert 'name="RF-02"' not in html
    confirmed = client.post(MORE, {"pain_now": "7"})
    assert confirmed.status_code == 302 and confirmed.url == DONE
    report.refresh_from_db()
    assert (report.red_flags, report.pain_now) == (["RF-02"], 7)
    assert Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).count() == 1  # never paged twice


@pytest.mark.hazard("HAZ-43")
def test_a_phone_entry_with_a_red_flag_for_a_withdrawn_patient_is_taken_alerted_and_says_so(
    client, coordinator, clinician, clock, make_patient, make_procedure
):
    procedure = make_procedure(patient=make_patient(responsible_clinician=clinician), performed_on=PERFORMED_ON)
    update_patient(patient=procedure.patient, status=PatientStatus.WITHDRAWN, reason="moved away")
    client.force_login(coordinator)

    response = client.post(PHONE, {"procedure": str(procedure.pk), "reported_at": "2026-03-10T08:30", "RF-03": "yes"})

    assert response.status_code == 302
    report = SymptomReport.objects.get(procedure=procedure)
    assert {"code": "patient_not_active", "status": "withdrawn"} in report.notes
    alert = paged(procedure.patient)
    note = AlertEvent.objects.get(alert=alert, kind=AlertEvent.Kind.NOTE)
    assert "withdrawn" in note.note and note.data["report"] == report.pk
    words = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("follow-up is withdrawn" in text and "red flags were alerted" in text for text in words), words
    page = client.get(response.url)
    assert "withdrawn" in visible_text(page)


@pytest.mark.hazard("HAZ-43", "HAZ-46")
def test_a_red_flag_sent_after_the_patient_was_withdrawn_and_the_checkin_cancelled_is_taken_and_paged(
    client, opened, clock
):
    checkin = opened.checkin
    update_patient(patient=checkin.patient, status=PatientStatus.WITHDRAWN, reason="moved away")
    sweep_checkins(now=CheckIn.objects.get(pk=checkin.pk).next_action_at)
    assert CheckIn.objects.get(pk=checkin.pk).state == CheckInState.CANCELLED

    response = client.post(FORM, {"resume": opened.resume, "RF-05": "yes", "pain_now": "6"})

    assert response.status_code == 302 and response.url == DONE
    report = SymptomReport.objects.get(procedure=checkin.procedure)
    assert (report.checkin, report.red_flags, report.pain_now) == (None, ["RF-05"], 6)
    assert {"code": "checkin_cancelled", "checkin": checkin.pk} in report.notes
    alert = paged(checkin.patient)
    assert AlertEvent.objects.filter(alert=alert, kind=AlertEvent.Kind.NOTE).exists()
    assert "Thank you, we have your answers." in visible_text(client.get(DONE))


@pytest.mark.hazard("HAZ-46")
def test_answers_for_a_checkin_cancelled_while_the_form_was_open_are_taken_without_it(client, opened):
    CheckIn.objects.filter(pk=opened.checkin.pk).update(state=CheckInState.CANCELLED)  # as a re-plan would

    response = client.post(FORM, {"resume": opened.resume, "RF-01": "yes", "doing_physio": "no"})

    assert response.status_code == 302 and response.url == DONE
    report = SymptomReport.objects.get(procedure=opened.checkin.procedure)
    assert (report.checkin, report.red_flags, report.doing_physio) == (None, ["RF-01"], False)
    assert paged(opened.checkin.patient).code == "RF-01"
    assert EMERGENCY in client.get(DONE).content.decode()
    assert CheckIn.objects.get(pk=opened.checkin.pk).state == CheckInState.CANCELLED
    again = client.post(FORM, {"resume": opened.resume, "RF-01": "yes"})  # the back button, then Send again
    assert again.status_code == 410 and SymptomReport.objects.count() == 1


@pytest.mark.hazard("HAZ-46")
def test_the_first_step_sent_for_a_cancelled_checkin_is_taken_and_paged(client, opened):
    CheckIn.objects.filter(pk=opened.checkin.pk).update(state=CheckInState.CANCELLED)

    response = client.post(FORM, {"resume": opened.resume, "step": "1", "RF-06": "yes"})

    assert response.status_code == 302
    report = SymptomReport.objects.get(procedure=opened.checkin.procedure)
    assert (report.checkin, report.red_flags) == (None, ["RF-06"])
    assert paged(opened.checkin.patient).code == "RF-06"
