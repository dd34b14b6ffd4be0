"""The check-in form on a phone: red flags first, then short pages with a step count; every page's
answers are saved and acted on when it is sent (capture first), kept if the patient goes back, and
painkillers can be several. Tap-to-call for the clinic is on every page."""

import re

import pytest

from alerts.models import Alert, CheckInState, Delivery, DeliveryKind, SymptomReport
from alerts.rules import get_rules

FORM, DONE = "/checkin/", "/checkin/done/"
RULES = get_rules("2026.1")
EMERGENCY = RULES.wording["emergency"].format(number="999")  # the test clinic's emergency number


def visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


NO_FLAGS = {f"RF-{n:02d}": "no" for n in range(1, 11)}


def step(client, number, answers=None):
    if answers is None:
        return client.get(FORM, {"step": number})
    return client.post(FORM, {"step": str(number), **answers})


@pytest.mark.hazard("HAZ-01")
@pytest.mark.django_db
def test_four_short_pages_each_saved_when_sent_with_a_step_count(client, invite, make_patient, clinician):
    invitation = invite(make_patient(responsible_clinician=clinician))
    client.get(invitation.path)

    first = step(client, 1).content.decode()
    assert "Step 1 of 4" in first
    assert set(re.findall(r'name="(RF-\d+)"', first)) == {flag.id for flag in RULES.red_flags}
    assert 'name="pain_now"' not in first

    # The first page's urgent red flag is saved and paged when the page is sent, before any other page.
    assert step(client, 1, {**NO_FLAGS, "RF-05": "yes"})["Location"] == f"{FORM}?step=2"
    report = SymptomReport.objects.get(checkin=invitation.checkin)
    assert report.red_flags == ["RF-05"] and "pain_now" in report.unanswered
    alert = Alert.objects.get(patient=invitation.checkin.patient)
    assert Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT).recipient_user == clinician
    invitation.checkin.refresh_from_db()
    assert invitation.checkin.state == CheckInState.ANSWERED

    assert "Step 2 of 4" in step(client, 2).content.decode()
    pain = {"pain_now": "6", "pain_average_24h": "5", "painkillers": ["non_opioid", "opioid"]}
    assert step(client, 2, pain)["Location"] == f"{FORM}?step=3"
    report.refresh_from_db()
    assert (report.pain_now, report.painkillers) == (6, ["non_opioid", "opioid"])

    assert step(client, 3, {"doing_physio": "yes"})["Location"] == f"{FORM}?step=4"
    last = step(client, 4).content.decode()
    assert "Step 4 of 4" in last and '<label class="question-label" for="id_other_symptoms">' in last
    assert step(client, 4, {"SO-2": "yes", "other_symptoms": "Sleeping badly."})["Location"] == DONE
    report.refresh_from_db()
    assert (report.doing_physio, report.second_opinion) == (True, {"SO-2": "yes"})
    assert report.other_symptoms == "Sleeping badly."
    assert Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).count() == 1  # never paged twice
    assert SymptomReport.objects.count() == 1


@pytest.mark.django_db
def test_a_blank_first_page_saves_nothing_until_an_answer_comes(client, invite):
    invitation = invite()
    client.get(invitation.path)

    assert step(client, 1, {})["Location"] == f"{FORM}?step=2"
    assert not SymptomReport.objects.exists()
    assert step(client, 2, {"pain_now": "4"})["Location"] == f"{FORM}?step=3"
    report = SymptomReport.objects.get(checkin=invitation.checkin)
    assert report.pain_now == 4
    assert "RF-01" in report.unanswered and "doing_physio" in report.unanswered


@pytest.mark.django_db
def test_nothing_answered_on_any_page_is_an_error_on_the_last(client, invite):
    client.get(invite().path)
    for number in (1, 2, 3):
        step(client, number, {})
    response = step(client, 4, {})
    assert response.status_code == 400
    assert "Please answer at least one question." in response.content.decode()
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-09")
@pytest.mark.django_db
def test_an_emergency_on_the_first_page_goes_to_the_instruction_at_once(client, invite):
    client.get(invite().path)
    assert step(client, 1, {**NO_FLAGS, "RF-01": "yes"})["Location"] == DONE
    assert EMERGENCY in visible(client.get(DONE).content.decode())


@pytest.mark.django_db
def test_answers_are_kept_when_the_patient_goes_back(client, invite):
    client.get(invite().path)
    step(client, 1, {**NO_FLAGS, "RF-06": "yes"})
    step(client, 2, {"pain_now": "7", "painkillers": ["non_opioid", "opioid"]})

    back = step(client, 2).content.decode()
    assert re.search(r'name="pain_now" value="7"[^>]*checked', back)
    assert re.search(r'name="painkillers" value="non_opioid"[^>]*checked', back)
    assert re.search(r'name="painkillers" value="opioid"[^>]*checked', back)
    first = step(client, 1).content.decode()
    assert re.search(r'name="RF-06" value="yes"[^>]*checked', first)
    assert 'href="?step=1"' in step(client, 2).content.decode()  # the way back


@pytest.mark.django_db
def test_none_with_a_painkiller_is_a_form_error_and_saves_nothing(client, invite):
    client.get(invite().path)
    response = step(client, 2, {"painkillers": ["none", "opioid"]})
    assert response.status_code == 400
    assert "not both" in response.content.decode()
    assert not SymptomReport.objects.exists()


@pytest.mark.django_db
def test_every_page_has_tap_to_call_for_the_clinic(client, invite):
    invitation = invite()
    client.get(invitation.path)
    digits = "tel:" + re.sub(r"[^\d+]", "", invitation.checkin.patient.clinic.phone)
    for number in (1, 2, 3, 4):
        page = step(client, number).content.decode()
        assert f'href="{digits}"' in page
        assert EMERGENCY in visible(page)  # the emergency instruction, with the clinic's number


@pytest.mark.hazard("HAZ-52")
@pytest.mark.django_db
def test_a_red_flag_changed_to_yes_after_going_back_is_saved_and_paged(client, invite, make_patient, clinician):
    """The first page was sent with every red flag "no" (saved at once); the patient goes back and
    changes one to "yes". A red flag only ever escalates: the yes is taken and paged, never ignored."""
    invitation = invite(make_patient(responsible_clinician=clinician))
    client.get(invitation.path)
    assert step(client, 1, NO_FLAGS)["Location"] == f"{FORM}?step=2"
    report = SymptomReport.objects.get(checkin=invitation.checkin)
    assert report.red_flags == [] and not Alert.objects.exists()

    assert step(client, 1, {**NO_FLAGS, "RF-05": "yes"})["Location"] == f"{FORM}?step=2"

    report.refresh_from_db()
    assert report.red_flags == ["RF-05"]
    alert = Alert.objects.get(patient=invitation.checkin.patient, code="RF-05")
    assert Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT).recipient_user == clinician
    # Going back again and answering "no" never clears it.
    step(client, 1, NO_FLAGS)
    report.refresh_from_db()
    assert report.red_flags == ["RF-05"] and Alert.objects.filter(code="RF-05").count() == 1


@pytest.mark.hazard("HAZ-52")
@pytest.mark.django_db
def test_an_answer_changed_after_going_back_replaces_the_first_which_is_kept_and_a_no_never_clears_a_yes(
    client, invite, make_patient, clinician
):
    """Pain 4 sent on page 2, then the patient goes back and sends 8: the report holds 8, the 4 is
    kept as the answer first sent. A red flag sent "yes" stays "yes" when the
    same page is sent again with "no"."""
    invitation = invite(make_patient(responsible_clinician=clinician))
    client.get(invitation.path)
    step(client, 1, {**NO_FLAGS, "RF-05": "yes"})
    step(client, 2, {"pain_now": "4", "pain_average_24h": "4", "painkillers": ["none"]})
    report = SymptomReport.objects.get(checkin=invitation.checkin)
    assert (report.pain_now, report.answer_changes) == (4, [])

    changed = {"pain_now": "8", "pain_average_24h": "4", "painkillers": ["non_opioid", "opioid"]}
    assert step(client, 2, changed)["Location"] == f"{FORM}?step=3"
    step(client, 1, NO_FLAGS)  # back to the first page, every red flag "no" this time

    report.refresh_from_db()
    assert (report.pain_now, report.pain_average_24h, report.painkillers) == (8, 4, ["non_opioid", "opioid"])
    changes = {change["question"]: (change["first"], change["changed_to"]) for change in report.answer_changes}
    assert changes == {"pain_now": (4, 8), "painkillers": (["none"], ["non_opioid", "opioid"])}
    assert report.red_flags == ["RF-05"] and Alert.objects.filter(code="RF-05").count() == 1
    # A blank sent later clears nothing.
    step(client, 2, {"pain_now": "", "pain_average_24h": "4"})
    report.refresh_from_db()
    assert report.pain_now == 8 and len(report.answer_changes) == 2
