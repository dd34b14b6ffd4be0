"""A patient answers the check-in on a 390×844 screen with the keyboard alone, page by page, and axe-core
(axe-playwright-python) finds no violation on any page a patient or a coordinator opens here."""

import re
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from alerts.messages import issue_acknowledge_link
from alerts.models import Alert, CheckIn, CheckInLink, SymptomReport, new_token
from alerts.reports import submit_report
from patients.demo import DEMO_PASSWORD, seed_demo
from patients.models import Patient
from tests.browser.pages import DESKTOP, new_page

AXE = Axe()


def assert_no_violations(page, what: str) -> None:
    results = AXE.run(page)
    assert results.violations_count == 0, f"{what}:\n{results.generate_report()}"


@pytest.fixture
def demo(transactional_db):
    return seed_demo().clinic


@pytest.fixture
def procedure(demo):
    return Patient.objects.get(clinic=demo, mrn="DEMO0002").procedures.get()


def checkin_link(procedure) -> str:
    checkin = CheckIn.objects.create(patient=procedure.patient, procedure=procedure, reason="demo", next_action_at=None)
    raw, digest = new_token()
    CheckInLink.objects.create(checkin=checkin, token_hash=digest, expires_at=timezone.now() + timedelta(days=7))
    return reverse("checkin-start", args=[raw])


def active(page) -> dict:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return {tag: e.tagName, name: e.name || '', value: e.value || '', text: e.innerText || ''}; }"
    )


def tab_to(page, test, limit: int = 40) -> dict:
    """Press Tab until the focused element passes `test`; the element."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if test(now := active(page)):
            return now
    raise AssertionError(f"Tab never reached the element; focus is on {active(page)}")


def choose(page, name: str, presses: int = 0) -> None:
    """Tab into the radio group `name`, select its first choice, then move `presses` choices on."""
    tab_to(page, lambda e: e["name"] == name)
    page.keyboard.press("Space")
    for _ in range(presses):
        page.keyboard.press("ArrowRight")


def send(page, button: str) -> None:
    tab_to(page, lambda e: e["tag"] == "BUTTON" and e["text"].strip() == button)
    page.keyboard.press("Enter")


def test_a_patient_answers_on_a_phone_with_the_keyboard_only(phone, procedure, screenshot):
    page = phone
    page.goto(checkin_link(procedure))
    expect(page.get_by_text("Step 1 of 4")).to_be_visible()
    assert_no_violations(page, "check-in step 1")
    screenshot(page, "checkin-step1.png")
    for number in range(1, 11):  # every red flag "No" (Yes is first, No second)
        choose(page, f"RF-{number:02d}", presses=1)
    send(page, "Send and continue")

    expect(page.get_by_text("Step 2 of 4")).to_be_visible()
    assert_no_violations(page, "check-in step 2")
    choose(page, "pain_now", presses=4)  # 0 → 4
    choose(page, "pain_average_24h", presses=3)
    tab_to(page, lambda e: e["name"] == "painkillers" and e["value"] == "non_opioid")
    page.keyboard.press("Space")  # paracetamol…
    tab_to(page, lambda e: e["name"] == "painkillers" and e["value"] == "opioid")
    page.keyboard.press("Space")  # …and codeine
    screenshot(page, "checkin-step2.png")
    send(page, "Send and continue")

    expect(page.get_by_text("Step 3 of 4")).to_be_visible()
    assert_no_violations(page, "check-in step 3")
    choose(page, "doing_physio")  # Yes
    send(page, "Send and continue")

    expect(page.get_by_text("Step 4 of 4")).to_be_visible()
    assert_no_violations(page, "check-in step 4")
    choose(page, "SO-2")  # Yes
    tab_to(page, lambda e: e["name"] == "other_symptoms")
    page.keyboard.type("Sleeping badly.")
    send(page, "Send my answers")

    expect(page).to_have_url(re.compile(r"/checkin/done/$"))
    assert_no_violations(page, "check-in confirmation")
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= 390
    report = SymptomReport.objects.get(patient=procedure.patient, source="form")
    assert (report.pain_now, report.pain_average_24h, report.painkillers) == (4, 3, ["non_opioid", "opioid"])
    assert (report.doing_physio, report.second_opinion, report.other_symptoms) == (
        True,
        {"SO-2": "yes"},
        "Sleeping badly.",
    )
    assert report.red_flags == []


def test_axe_finds_nothing_on_the_front_page_the_sign_in_and_the_acknowledge_page(
    browser, live_server, procedure, screenshot
):
    context, page = new_page(browser, live_server, **DESKTOP)
    try:
        page.goto("/")
        assert_no_violations(page, "front page")
        screenshot(page, "landing.png")
        page.goto(reverse("admin:login"))
        assert_no_violations(page, "sign-in")
        submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-05"])
        alert = Alert.objects.get(patient=procedure.patient)
        clinician = procedure.patient.responsible_clinician
        page.goto(reverse("alert-acknowledge", args=[issue_acknowledge_link(alert=alert, user_id=clinician.pk)]))
        assert_no_violations(page, "acknowledge link")
        screenshot(page, "acknowledge.png")
        page.get_by_role("button", name="Acknowledge and stop escalation").click()
        expect(page.get_by_role("main")).to_be_visible()
        assert_no_violations(page, "acknowledged")
    finally:
        context.close()


def test_axe_finds_nothing_on_the_staff_pages_a_coordinator_opens(browser, live_server, procedure, screenshot):
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-01"])
    context, page = new_page(browser, live_server, **DESKTOP)
    try:
        page.goto(reverse("admin:login"))
        page.get_by_label("Username").fill("coordinator")
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name=re.compile("Open alerts"))).to_be_visible()
        pages = {
            "worklist": reverse("admin:index"),
            "patient": reverse("admin:patient-overview", args=[procedure.patient_id]),
            "alerts": reverse("admin:alerts_alert_changelist"),
            "phone report": reverse("admin:alerts_symptomreport_phone"),
            "kpis": reverse("kpis"),
        }
        for name, url in pages.items():
            page.goto(url)
            assert_no_violations(page, name)
            screenshot(page, f"{name.replace(' ', '-')}.png")
    finally:
        context.close()
