"""The patient's check-in: an e-mailed single-use link, a form that shows no identifiers, and answers
that reach the clinician through the same rules as every other report."""

import re
from datetime import date, timedelta
from html import unescape
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from alerts.checkins import sweep_checkins
from alerts.forms import CheckInForm
from alerts.models import (
    Alert,
    CheckIn,
    CheckInLink,
    CheckInState,
    Delivery,
    DeliveryKind,
    ReviewTask,
    SymptomReport,
)
from alerts.outbox import deliver
from alerts.rules import get_rules
from patients.models import Checkpoint, CheckpointState
from patients.protocol import get_protocol
from tests.builders import CHECKIN_DUE, form_answers, link_path

RULES = get_rules("2026.1")
PROTOCOL = get_protocol("2026.1")
WORDING = RULES.wording
# The spec's sentence (§5), with the clinic's own number in place of "local number, e.g. 911/112/999".
SPEC_EMERGENCY = "Call emergency services now ({number}). Do not wait for a reply from us."
SPEC_WORSE = "If you get worse, or cannot reach us, call emergency services."
FORM, DONE = "/checkin/", "/checkin/done/"
PROBLEM_TEMPLATE = "alerts/checkin/problem.html"


def visible_text(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def template_names(response) -> list[str]:
    return [template.name for template in response.templates]


def answer(client, invitation, **overrides):
    """Open the invitation link and post the form; returns the response to the post."""
    assert client.get(invitation.path).status_code == 302
    return client.post(FORM, form_answers(**overrides))


class Questions(HTMLParser):
    """Collects, per form control, the legend of its fieldset and the labels that point at it."""

    def __init__(self):
        super().__init__()
        self.legend_of: dict[str, str] = {}  # control name -> legend text of its fieldset
        self.radio_ids: list[str] = []
        self.label_for: set[str] = set()
        self._legend: str | None = None
        self._in_legend = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "fieldset":
            self._legend = ""
        elif tag == "legend":
            self._in_legend = True
        elif tag == "label" and attrs.get("for"):
            self.label_for.add(attrs["for"])
        elif tag in ("input", "textarea", "select") and attrs.get("type") != "hidden":
            self.legend_of[attrs["name"]] = (self._legend or "").strip()
            if attrs.get("type") == "radio":
                self.radio_ids.append(attrs["id"])

    def handle_endtag(self, tag):
        if tag == "legend":
            self._in_legend = False
        elif tag == "fieldset":
            self._legend = None

    def handle_data(self, data):
        if self._in_legend and self._legend is not None:
            self._legend += data


# --- The link -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_invitation_link_opens_a_session_and_redirects_to_a_form_address_without_the_token(client, invite):
    invitation = invite()
    token = invitation.path.strip("/").split("/")[-1]

    response = client.get(invitation.path)

    assert response.status_code == 302
    assert response.url == reverse("checkin-form") == FORM
    assert token not in response.url
    assert client.session["checkin_id"] == invitation.checkin.pk
    assert "sessionid" in response.cookies
    form = client.get(response.url)
    assert form.status_code == 200
    assert token not in form.content.decode()


@pytest.mark.django_db
def test_the_form_shows_no_name_mrn_or_birth_date(client, invite, make_patient):
    born = date(1941, 2, 3)
    patient = make_patient(given_name="Zebedee", family_name="Quartermaine", mrn="SENTINEL-MRN-42", birth_date=born)
    invitation = invite(patient)

    client.get(invitation.path)
    page = client.get(FORM).content.decode()

    sentinels = ["Zebedee", "Quartermaine", "SENTINEL-MRN-42", born.isoformat(), "3 February 1941", "03/02/1941"]
    sentinels += ["Feb. 3, 1941", "February 3, 1941", "1941"]
    for sentinel in sentinels:
        assert sentinel not in page, sentinel
        assert sentinel not in invitation.message.body, sentinel


@pytest.mark.django_db
def test_the_symptoms_heading_comes_once_just_before_the_protocols_first_red_flag_question(client, invite):
    client.get(invite().path)
    page = unescape(client.get(FORM).content.decode())

    heading = page.index("New or changed symptoms")
    first_flag = page.index(RULES.red_flags[0].question)
    assert page.count("New or changed symptoms") == 1
    assert heading < first_flag
    assert page.count("<fieldset", heading, first_flag) == 1  # the first red flag's own


@pytest.mark.django_db
def test_the_form_has_a_legend_for_every_question_and_a_label_for_every_choice(client, invite):
    invitation = invite()
    client.get(invitation.path)
    questions = Questions()

    for step in range(1, len(CheckInForm.steps(RULES)) + 1):  # every short page of the form
        questions.feed(client.get(FORM, {"step": step}).content.decode())

    fields = CheckInForm(rules=RULES).fields
    expected = {name: str(field.label) for name, field in fields.items() if name != "other_symptoms"}
    legends = {name: unescape(legend) for name, legend in questions.legend_of.items() if name != "other_symptoms"}
    assert legends == expected
    assert questions.radio_ids
    assert set(questions.radio_ids) <= questions.label_for
    assert "id_other_symptoms" in questions.label_for  # the comment box has a label of its own


@pytest.mark.hazard("HAZ-03")
@pytest.mark.django_db
def test_a_mail_scanners_prefetch_then_the_patients_own_visit_both_open_the_form_and_the_answer_counts(
    client, invite, make_patient, clinician
):
    invitation = invite(make_patient(responsible_clinician=clinician))
    scanner = Client()
    assert scanner.get(invitation.path).status_code == 302  # the mail scanner follows the link first
    assert scanner.get(FORM).status_code == 200

    assert client.get(invitation.path).status_code == 302  # then the patient, in their own browser
    assert client.get(invitation.path).status_code == 302  # and again: a GET changes nothing
    response = client.post(FORM, form_answers(**{"RF-02": "yes"}))

    assert response.status_code == 302
    assert CheckInLink.objects.get(checkin=invitation.checkin).used_at is None
    invitation.checkin.refresh_from_db()
    assert invitation.checkin.state == CheckInState.ANSWERED
    assert Alert.objects.get(patient=invitation.checkin.patient).code == "RF-02"
    answered = Client().get(invitation.path)  # once answered, the link says so, with the clinic's phone
    assert answered.status_code == 410
    assert "already answered" in visible_text(answered)
    assert invitation.checkin.patient.clinic.phone in visible_text(answered)


@pytest.mark.django_db
def test_an_expired_link_shows_a_friendly_410_with_the_clinic_phone(client, invite, clinic, clock):
    invitation = invite()
    clock.shift(PROTOCOL.link_lifetime("checkin") + timedelta(seconds=1))

    response = client.get(invitation.path)

    assert response.status_code == 410
    assert PROBLEM_TEMPLATE in template_names(response)
    assert "expired" in visible_text(response)
    assert clinic.phone in visible_text(response)
    assert "checkin_id" not in client.session
    assert CheckInLink.objects.get(checkin=invitation.checkin).used_at is None


@pytest.mark.django_db
def test_a_link_still_works_just_before_it_expires(client, invite, clock):
    invitation = invite()
    clock.shift(PROTOCOL.link_lifetime("checkin") - timedelta(seconds=1))

    assert client.get(invitation.path).status_code == 302


@pytest.mark.django_db
def test_a_forged_token_shows_a_friendly_404(client, invite):
    invite()

    response = client.get("/c/forged-token-that-was-never-issued-0123456789abcdef/")

    assert response.status_code == 404
    assert PROBLEM_TEMPLATE in template_names(response)
    assert "call emergency services" in visible_text(response)
    assert "checkin_id" not in client.session


@pytest.mark.django_db
def test_the_form_without_an_opened_link_gives_no_checkin(client, invite):
    invite()

    response = client.get(FORM)

    assert response.status_code == 403
    assert PROBLEM_TEMPLATE in template_names(response)


@pytest.mark.django_db
def test_another_patients_link_never_gives_access_to_the_first_patients_checkin(client, invite, make_patient):
    alice = invite(make_patient(given_name="Alice"))
    bob = invite(make_patient(given_name="Bob"))

    client.get(alice.path)
    client.get(bob.path)  # the same browser then opens Bob's link
    assert client.session["checkin_id"] == bob.checkin.pk
    response = client.post(FORM, form_answers(**{"RF-01": "yes"}))

    assert response.status_code == 302
    [report] = SymptomReport.objects.all()
    assert report.checkin_id == bob.checkin.pk
    assert report.patient == bob.checkin.patient
    alice.checkin.refresh_from_db()
    assert alice.checkin.state == CheckInState.INVITED
    assert not Alert.objects.filter(patient=alice.checkin.patient).exists()
    assert client.get(FORM).status_code == 403  # the session answered its one check-in and is spent


# --- Answers ------------------------------------------------------------------------------------


@pytest.mark.hazard("HAZ-09")
@pytest.mark.django_db
def test_an_emergency_answer_shows_the_spec_emergency_sentence_and_pages_the_clinician(
    client, invite, make_patient, clinician
):
    invitation = invite(make_patient(responsible_clinician=clinician))

    response = answer(client, invitation, **{"RF-01": "yes"})

    assert response.status_code == 302
    assert response.url == DONE
    done = client.get(DONE)
    assert WORDING["emergency"] == SPEC_EMERGENCY
    tap_to_call = '<a class="call" href="tel:999">999</a>'  # the clinic's number (Admin › Clinics)
    assert SPEC_EMERGENCY.format(number=tap_to_call) in done.content.decode()
    alert = Alert.objects.get(patient=invitation.checkin.patient)
    assert (alert.code, alert.tier) == ("RF-01", "emergency")
    page = Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT)
    assert page.recipient_user == clinician


@pytest.mark.django_db
def test_an_urgent_answer_says_when_the_team_responds_and_what_to_do_if_worse(client, invite):
    invitation = invite()

    answer(client, invitation, **{"RF-06": "yes"})

    text = visible_text(client.get(DONE))
    assert WORDING["urgent"] in text
    assert WORDING["worse"] == SPEC_WORSE
    assert SPEC_WORSE in text
    alert = Alert.objects.get(patient=invitation.checkin.patient)
    assert (alert.code, alert.tier) == ("RF-06", "urgent")


@pytest.mark.django_db
def test_answers_with_no_finding_are_never_called_fine_or_normal_and_say_what_to_do_if_worse(client, invite):
    invitation = invite()

    answer(client, invitation, pain_now="2", pain_average_24h="2")

    text = visible_text(client.get(DONE))
    assert SymptomReport.objects.get(checkin=invitation.checkin).findings == []
    assert not re.search(r"\b(fine|normal)\b", text, flags=re.I)
    assert WORDING["worse"] in text


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"pain_now": "11"}, "pain_now"),
        ({"pain_average_24h": "-1"}, "pain_average_24h"),
        ({"painkillers": "morphine-max"}, "painkillers"),
        ({"RF-01": "maybe"}, "RF-01"),
        ({"wearing_brace": "sometimes"}, "wearing_brace"),
    ],
)
@pytest.mark.django_db
def test_a_bad_answer_gives_a_400_with_field_errors_and_saves_nothing(client, invite, overrides, field):
    invitation = invite()

    response = answer(client, invitation, **overrides)

    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert escape(response.context["form"].errors[field][0]) in response.content.decode()
    assert not SymptomReport.objects.exists()
    assert not Alert.objects.exists()
    invitation.checkin.refresh_from_db()
    assert invitation.checkin.state == CheckInState.INVITED
    assert client.post(FORM, form_answers()).status_code == 302  # the patient can correct and send


@pytest.mark.hazard("HAZ-11")
@pytest.mark.django_db
def test_a_checkin_cannot_be_answered_twice_from_the_same_or_a_second_link(client, invite, clock):
    invitation = invite()
    clock.shift(timedelta(days=PROTOCOL.checkin.resend_after_days))
    sweep_checkins(now=CHECKIN_DUE + timedelta(days=PROTOCOL.checkin.resend_after_days))
    resent = Delivery.objects.filter(checkin=invitation.checkin, kind=DeliveryKind.CHECKIN).latest("id")
    deliver(delivery_id=resent.pk)
    second_path = link_path(mail.outbox[-1].body)
    other = Client()
    assert other.get(second_path).status_code == 302  # both links opened before either is answered

    assert answer(client, invitation).status_code == 302
    again = client.post(FORM, form_answers(**{"RF-02": "yes"}))
    from_other = other.post(FORM, form_answers(**{"RF-02": "yes"}))

    assert again.status_code == 403
    assert from_other.status_code == 403
    assert SymptomReport.objects.count() == 1
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_answering_completes_the_cp01_checkpoint_with_the_pain_score(client, invite):
    invitation = invite()

    answer(client, invitation, pain_now="4", pain_average_24h="5")

    checkpoint = Checkpoint.objects.get(pk=invitation.checkin.checkpoint_id)
    assert checkpoint.code == "CP-01"
    assert checkpoint.state == CheckpointState.COMPLETED
    assert checkpoint.pain_score == 4
    invitation.checkin.refresh_from_db()
    assert invitation.checkin.state == CheckInState.ANSWERED


# --- Unanswered -----------------------------------------------------------------------------------


def checkin_invitations(checkin) -> list[str]:
    return list(
        Delivery.objects.filter(checkin=checkin, kind=DeliveryKind.CHECKIN)
        .order_by("id")
        .values_list("cause", flat=True)
    )


@pytest.mark.hazard("HAZ-10")
@pytest.mark.django_db
def test_an_unanswered_checkin_is_resent_once_then_becomes_a_phone_call_without_a_third_invitation(invite):
    checkin = invite().checkin
    policy = PROTOCOL.checkin
    resend, call = timedelta(days=policy.resend_after_days), timedelta(days=policy.call_after_days)

    sweep_checkins(now=CHECKIN_DUE + resend - timedelta(minutes=1))
    assert checkin_invitations(checkin) == [f"checkin:{checkin.pk}:1"]

    sweep_checkins(now=CHECKIN_DUE + resend)
    assert checkin_invitations(checkin) == [f"checkin:{checkin.pk}:1", f"checkin:{checkin.pk}:2"]

    sweep_checkins(now=CHECKIN_DUE + resend + call - timedelta(minutes=1))
    checkin.refresh_from_db()
    assert checkin.state == CheckInState.INVITED

    sweep_checkins(now=CHECKIN_DUE + resend + call)
    sweep_checkins(now=CHECKIN_DUE + timedelta(days=30))
    checkin.refresh_from_db()
    assert checkin.state == CheckInState.CALL_NEEDED
    assert checkin.invitations_sent == 2
    assert len(checkin_invitations(checkin)) == 2


@pytest.mark.hazard("HAZ-10")
@pytest.mark.django_db
def test_a_patient_without_email_consent_gets_no_invitation_and_goes_straight_to_a_phone_call(
    plan_checkin, make_patient
):
    checkin = plan_checkin(make_patient(email_consent=False))

    sweep_checkins(now=CHECKIN_DUE)

    checkin.refresh_from_db()
    assert checkin.state == CheckInState.CALL_NEEDED
    assert checkin_invitations(checkin) == []
    assert mail.outbox == []
    assert not CheckInLink.objects.exists()


@pytest.mark.django_db
def test_an_answered_checkin_is_neither_resent_nor_turned_into_a_call(client, invite):
    invitation = invite()
    answer(client, invitation)

    sweep_checkins(now=CHECKIN_DUE + timedelta(days=30))

    checkin = CheckIn.objects.get(pk=invitation.checkin.pk)
    assert checkin.state == CheckInState.ANSWERED
    assert checkin_invitations(checkin) == [f"checkin:{checkin.pk}:1"]


@pytest.mark.django_db
def test_concerns_not_heard_say_when_the_team_reviews_and_offer_second_opinion_information(client, invite):
    invitation = invite()

    answer(client, invitation, **{"SO-2": "no"})

    text = visible_text(client.get(DONE))
    # Tuesday 10 March 09:00 in London + 2 working days: the end of Thursday 12 March.
    assert WORDING["routine"].format(day="Thursday 12 March") in text
    assert WORDING["worse"] in text
    assert "second opinion" in text
    [task] = ReviewTask.objects.filter(patient=invitation.checkin.patient)
    assert (task.code, task.tier) == ("SO-2", "routine")
    assert not Alert.objects.exists()
