"""The patient page is the coordinator's home for one patient: who they are and how to reach them, open
alerts and checkpoints with their actions (only where the user's role in the patient's clinic allows),
the answers in words with the free-text comment, and words for people: no field names or spec
references in sentences, temperatures in the clinic's unit."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.reports import add_answers, submit_report
from patients.models import ClinicMembership, StaffRole
from patients.services import sweep_checkpoint_states
from tests import builders

pytestmark = pytest.mark.django_db


@pytest.fixture
def reported(make_patient, make_procedure):
    patient = make_patient(given_name="Rita", family_name="Report", mrn="RP-5", phone="+442079460555")
    procedure = make_procedure(
        patient=patient,
        performed_on=timezone.localdate() - timedelta(days=30),
        fracture_diagnosed_on=timezone.localdate() - timedelta(days=40),
    )
    submit_report(
        procedure=procedure,
        source="api",
        pain_now=7,
        red_flags=["RF-08"],
        fell_since_last=False,
        other_symptoms="The wound is warm & I feel shivery at night.",
    )
    sweep_checkpoint_states(now=timezone.now())
    return procedure


def page_of(client, procedure) -> str:
    return client.get(reverse("admin:patient-overview", args=[procedure.patient_id])).content.decode()


def sentences(html: str) -> str:
    """The page's text outside the "why" disclosures."""
    return re.sub(r"<details class=\"why\">.*?</details>", "", html, flags=re.S)


def test_the_patient_page_names_the_patient_and_shows_how_to_reach_them_and_what_is_open(client, coordinator, reported):
    client.force_login(coordinator)

    html = page_of(client, reported)

    assert "<strong>Report, Rita</strong> · MRN RP-5 · born" in html
    assert 'href="tel:+442079460555"' in html and "+44 20 7946 0555" in html
    assert (
        "Open alerts" in html
        and reverse("admin:worklist-act", args=["alert", reported.alerts.get().pk, "acknowledge"]) in html
    )
    assert "Checkpoints to act on" in html and "Complete with outcome" in html


def test_answers_are_in_words_with_the_patients_own_comment(client, coordinator, reported):
    client.force_login(coordinator)

    html = page_of(client, reported)

    assert "How bad is your back pain right now?" in html and "7 out of 10" in html
    assert "The wound is warm &amp; I feel shivery at night." in html
    assert '{"' not in sentences(html) and "fell_since_last" not in html


def test_spec_references_live_in_the_why_disclosure_and_temperatures_in_the_clinics_unit(client, coordinator, reported):
    client.force_login(coordinator)

    html = page_of(client, reported)
    worklist = client.get(reverse("admin:index")).content.decode()

    for text in (sentences(html), sentences(worklist)):
        assert "[DESIGN]" not in text and "spec §" not in text and "per E14" not in text
        assert "101°F" not in text
    assert "Check for infection (temperature above 38.3 °C)" in worklist
    assert "S1; S0; E14" in worklist  # in the disclosure


def test_a_clinic_that_reads_fahrenheit_keeps_it(client, make_patient, make_procedure):
    us = builders.make_clinic(name="Bay Spine", slug="bay", time_zone="America/Chicago", phone="+1 312 555 0142")
    staff = builders.make_staff(username="usa", clinic=us, role=StaffRole.COORDINATOR)
    procedure = make_procedure(patient=make_patient(clinic=us, time_zone="America/Chicago"))
    submit_report(procedure=procedure, source="api", red_flags=["RF-08"])
    client.force_login(staff)

    worklist = client.get(reverse("admin:index")).content.decode()

    assert "temperature above 101°F)" in worklist


def test_an_auditor_reads_the_page_without_any_action(client, reported, clinic):
    auditor = builders.make_staff(username="audrey", clinic=clinic, role=StaffRole.AUDITOR)
    assert ClinicMembership.objects.get(user=auditor).role == StaffRole.AUDITOR
    client.force_login(auditor)

    html = page_of(client, reported)

    assert "Report, Rita" in html
    assert "Acknowledge</button>" not in html and "Complete with outcome" not in html


def test_the_alert_and_report_pages_of_the_admin_show_the_answers_in_words_as_the_patient_page_does(
    client, coordinator, reported
):
    from alerts.models import Alert, SymptomReport
    from alerts.rules import get_rules

    client.force_login(coordinator)
    alert, report = Alert.objects.get(), SymptomReport.objects.get()
    flag = next(flag for flag in get_rules(report.protocol_version).red_flags if flag.id == "RF-08")
    add_answers(report=report, pain_now=9)  # the patient went back and changed the 7

    for name, pk in (("alerts_alert_change", alert.pk), ("alerts_symptomreport_change", report.pk)):
        response = client.get(reverse(f"admin:{name}", args=[pk]))
        assert response.status_code == 200
        html = response.content.decode()
        assert flag.question in html and '<strong class="warning-sign">Yes (warning sign)</strong>' in html
        assert "How bad is your back pain right now?" in html and "9 out of 10" in html
        assert ": first 7 out of 10, then 9 out of 10.</li>" in html, "the answer first sent is kept"
        assert "The wound is warm &amp; I feel shivery at night." in html
        # Not the raw fields: the alert's answers JSON, the report's red-flag codes and pain field.
        assert 'field-answers"' not in html and "[&quot;RF-08&quot;]" not in html
        assert "field-red_flags" not in html and "field-pain_now" not in html and "field-second_opinion" not in html
