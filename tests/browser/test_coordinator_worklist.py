"""In a real browser on the `make run` demo data: the coordinator finds an overdue patient by MRN, takes the
call, logs "left a voicemail" with a time to try again and sees the row leave and come back; then enters
the patient's answers from the call task, with the patient already chosen and named in a banner."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from alerts.models import CheckIn, CheckInState, SymptomReport
from patients.demo import DEMO_PASSWORD, seed_demo
from patients.models import Patient, WorkItem, WorkKind
from patients.services import sweep_checkpoint_states


@pytest.fixture
def to_call(transactional_db):
    """A demo patient with a phone number, whose unanswered check-in became a call task."""
    clinic = seed_demo().clinic
    sweep_checkpoint_states(now=timezone.now())
    patient = Patient.objects.get(clinic=clinic, mrn="DEMO0003")
    Patient.objects.filter(pk=patient.pk).update(phone="+442079460333")
    procedure = patient.procedures.get()
    return CheckIn.objects.create(patient=patient, procedure=procedure, reason="CP-01", state=CheckInState.CALL_NEEDED)


def log_in(page):
    page.goto(reverse("admin:login"))
    page.get_by_label("Username").fill("coordinator")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Open alerts"))).to_be_visible()


def test_coordinator_finds_assigns_leaves_a_voicemail_and_enters_the_call_from_the_task(desktop, to_call, screenshot):
    page, patient = desktop, to_call.patient
    log_in(page)

    page.get_by_label("Find a patient by name or MRN").fill(patient.mrn)
    page.get_by_role("button", name="Search", exact=True).click()
    assert patient.mrn not in page.url
    row = page.locator(f"#call-{patient.pk}")
    expect(row).to_contain_text(f"MRN {patient.mrn}")
    expect(row.get_by_role("link", name=re.compile(r"Call \+44 20 7946 0333"))).to_have_attribute(
        "href", "tel:+442079460333"
    )
    row.get_by_label("Assign to").select_option(label="Casey Coordinator")
    row.get_by_role("button", name="Assign").click()
    expect(page.locator("ul.messagelist li.success")).to_contain_text("The work was given to")
    assert WorkItem.objects.get(patient=patient, kind=WorkKind.CALL).assigned_to.username == "coordinator"
    screenshot(page, "worklist-search.png")

    row = page.locator(f"#call-{patient.pk}")
    row.get_by_label("Left a voicemail").check()
    retry = timezone.now().astimezone(ZoneInfo(patient.clinic.time_zone)) + timedelta(hours=2)  # the clinic's time
    row.get_by_label("Try again at").fill(retry.strftime("%Y-%m-%dT%H:%M"))
    row.get_by_role("button", name="Log the call").click()

    expect(page.locator("ul.messagelist li.success")).to_have_text("The call was logged.")
    expect(page.locator(f"#call-{patient.pk}")).to_have_count(0)
    # Two hours later (moved in the database: the server's clock is real) the call is back.
    WorkItem.objects.filter(patient=patient).update(retry_at=timezone.now() - timedelta(minutes=1))
    page.reload()
    row = page.locator(f"#call-{patient.pk}")
    expect(row).to_contain_text("left a voicemail")

    row.get_by_role("link", name="Enter the answers from this call").click()
    banner = page.get_by_role("region", name="Patient this report is for")
    expect(banner).to_contain_text(f"{patient.family_name}, {patient.given_name}")
    expect(banner).to_contain_text(f"MRN {patient.mrn}")
    screenshot(page, "phone-entry-banner.png")
    page.locator("input[name='pain_now'][value='3']").check()
    page.get_by_role("button", name="Save the report").click()

    expect(page.locator("ul.messagelist li.success")).to_contain_text("The phone report was saved.")
    report = SymptomReport.objects.get(patient=patient, source="phone")
    assert report.checkin_id == to_call.pk and report.pain_now == 3
