"""End-to-end in a real browser: the coordinator's worklist, patient overview and KPI page through the admin,
and the patient's check-in on a phone-sized screen, driven partly by the keyboard."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from alerts.messages import issue_acknowledge_link
from alerts.models import Alert, AlertState, CheckIn, CheckInLink, SymptomReport, new_token
from alerts.reports import submit_report
from patients.demo import DEMO_PASSWORD, seed_demo
from patients.models import Checkpoint, CheckpointState, Patient
from patients.services import sweep_checkpoint_states
from tests.browser.pages import DESKTOP, PHONE, new_page

# The spec's sentence (§5) with the clinic's own emergency number (Clinic.emergency_number) as the local number.
SPEC_EMERGENCY = "Call emergency services now (999). Do not wait for a reply from us."
# Checkpoints whose completion needs a DXA result or a medication decision.
NEEDS_OUTCOME = {"CP-06", "CP-07", "CP-13"}
PREFERRED_CODES = ["CP-02", "CP-03", "CP-10"]


@pytest.fixture
def demo(transactional_db):
    """The `make run` demo, with checkpoint states brought up to date as the periodic sweep does."""
    clinic = seed_demo().clinic
    sweep_checkpoint_states(now=timezone.now())
    return clinic


@pytest.fixture
def demo_procedure(demo):
    return Patient.objects.get(clinic=demo, mrn="DEMO0002").procedures.get()


@pytest.fixture
def rf01_alert(demo_procedure):
    submit_report(procedure=demo_procedure, source="api", pain_now=7, red_flags=["RF-01"])
    return Alert.objects.get(patient_id=demo_procedure.patient_id, code="RF-01", state=AlertState.OPEN)


def log_in(page, username="coordinator"):
    page.goto(reverse("admin:login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name=re.compile("Open alerts"))).to_be_visible()


def success_message(page):
    return page.locator("ul.messagelist li.success")


def test_coordinator_acknowledges_an_alert_on_the_worklist(desktop, rf01_alert, screenshot):
    page = desktop
    log_in(page)
    assert page.url.endswith(reverse("admin:index"))
    row = page.locator(f"#alert-{rf01_alert.pk}")
    expect(row).to_be_visible()
    expect(row).to_contain_text("RF-01")
    expect(row).to_contain_text(rf01_alert.patient.family_name)
    screenshot(page, "worklist.png")

    row.get_by_label("Note for this alert").fill("Patient called, sent to the emergency department.")
    row.get_by_role("button", name="Acknowledge").click()

    expect(success_message(page)).to_contain_text("The alert was acknowledged.")
    expect(page.locator(f"#alert-{rf01_alert.pk}")).to_have_count(0)
    rf01_alert.refresh_from_db()
    assert rf01_alert.state == AlertState.ACKNOWLEDGED


def test_coordinator_completes_a_checkpoint_with_its_outcome(desktop, demo):
    page = desktop
    log_in(page)
    # A checkpoint the worklist's first page shows, that needs no DXA or medication outcome.
    shown = [
        int(item_id.split("-")[1])
        for item_id in page.locator("li[id^='checkpoint-']").evaluate_all("items => items.map(i => i.id)")
    ]
    candidates = Checkpoint.objects.filter(
        pk__in=shown, state__in=[CheckpointState.DUE, CheckpointState.MISSED]
    ).exclude(code__in=NEEDS_OUTCOME)
    by_code = {cp.code: cp for cp in candidates.order_by("-pk")}
    checkpoint = next((by_code[code] for code in PREFERRED_CODES if code in by_code), candidates.first())
    assert checkpoint is not None, "the worklist shows no due or missed checkpoint that needs no special outcome"

    row = page.locator(f"#checkpoint-{checkpoint.pk}")
    row.scroll_into_view_if_needed()
    expect(row).to_be_visible()
    form = row.locator("form[action$='/complete/']")
    expect(form).to_be_hidden()
    row.locator("summary", has_text="Complete with outcome").click()
    expect(form).to_be_visible()
    form.locator("[name=notes]").fill("Phoned the patient; needle site fine.")
    form.locator("[name=pain_score]").fill("3")
    form.get_by_role("button", name="Complete", exact=True).click()

    expect(success_message(page)).to_contain_text("The checkpoint was completed.")
    expect(page.locator(f"#checkpoint-{checkpoint.pk}")).to_have_count(0)
    checkpoint.refresh_from_db()
    assert checkpoint.state == CheckpointState.COMPLETED
    assert checkpoint.pain_score == 3


def test_patient_overview_shows_chart_timeline_and_risk_sources(desktop, rf01_alert, screenshot):
    page = desktop
    log_in(page)
    page.locator(f"#alert-{rf01_alert.pk} a[href$='/overview/']").click()
    expect(page).to_have_url(re.compile(rf"/patients/patient/{rf01_alert.patient_id}/overview/$"))

    pain = page.locator("section.wl", has=page.get_by_role("heading", name="Pain"))
    expect(pain.locator("svg")).to_be_visible()
    chart_box = pain.locator("svg").first.bounding_box()
    assert chart_box["width"] > 200 and chart_box["height"] > 100

    timeline = page.locator("section.wl", has=page.get_by_role("heading", name="Timeline"))
    expect(timeline.locator("tr.tl-procedure")).to_be_visible()
    expect(timeline.locator("tr.tl-report")).to_contain_text("1 warning sign answered yes")
    expect(timeline.locator("tr.tl-alert")).to_contain_text("RF-01")
    expect(timeline.locator("tr.tl-checkpoint").first).to_be_visible()

    risk = page.locator("section.wl", has=page.get_by_role("heading", name="Risk"))
    expect(risk.get_by_role("columnheader", name="Contributing factor")).to_be_visible()
    factors = risk.locator("tbody tr td:first-child")
    assert factors.count() >= 1
    for index in range(factors.count()):  # each factor's id and source are one click away, under "Why"
        why = factors.nth(index).locator("details.why")
        why.locator("summary").click()
        assert "source" in why.inner_text() and why.inner_text().split("source", 1)[1].strip(" ."), index
    screenshot(page, "patient.png")


def test_kpi_page(desktop, demo, screenshot):
    page = desktop
    log_in(page)
    response = page.goto(reverse("kpis"))
    assert response.status == 200
    expect(page.get_by_role("heading", name="Programme KPIs")).to_be_visible()
    screenshot(page, "kpis.png")


# --- the patient's check-in on a phone ---------------------------------------------------------------------

# Answers by field name; every question not listed gets "no" (or its first choice).
ANSWERS = {"pain_now": "7", "pain_average_24h": "6", "RF-01": "yes"}
RADIO_GROUPS_JS = """() => {
  const groups = [];
  for (const el of document.querySelectorAll('form input[type=radio], form textarea')) {
    if (el.tagName === 'TEXTAREA') { groups.push({name: el.name, kind: 'text'}); continue; }
    let group = groups.find(g => g.name === el.name);
    if (!group) { group = {name: el.name, kind: 'radio', values: []}; groups.push(group); }
    group.values.push(el.value);
  }
  return groups;
}"""


def focused(page) -> dict:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return {tag: e.tagName, name: e.name || '', type: e.type || '', value: e.value || ''}; }"
    )


def make_checkin_link(procedure) -> str:
    """As `manage.py demo_checkin_link` does."""
    checkin = CheckIn.objects.create(patient=procedure.patient, procedure=procedure, reason="demo", next_action_at=None)
    raw, digest = new_token()
    CheckInLink.objects.create(checkin=checkin, token_hash=digest, expires_at=timezone.now() + timedelta(days=7))
    return raw


def check_form_accessibility(page):
    radios = page.evaluate(
        """() => [...document.querySelectorAll('input[type=radio]')].map(r => {
          const fieldset = r.closest('fieldset'), legend = fieldset && fieldset.querySelector(':scope > legend');
          return {
            name: r.name, value: r.value,
            labels: [...r.labels].map(l => ({text: l.innerText.trim(), h: l.getBoundingClientRect().height,
                                              w: l.getBoundingClientRect().width})),
            legend: legend ? legend.innerText.trim() : null,
          };
        })"""
    )
    assert radios, "no radio buttons on the check-in form"
    for radio in radios:
        where = f"{radio['name']}={radio['value']}"
        assert radio["labels"], f"{where} has no associated label"
        label = radio["labels"][0]
        assert label["text"] and label["w"] > 0, f"{where}: label not visible"
        assert label["h"] >= 44, f"{where}: tap target only {label['h']}px high"
        assert radio["legend"], f"{where} is not inside a fieldset with a legend"
    for legend in page.locator("fieldset > legend").all():
        expect(legend).to_be_visible()
    textarea = page.locator("textarea")
    if textarea.count():
        assert textarea.first.evaluate("t => t.labels.length > 0 || !!t.closest('fieldset').querySelector('legend')")
    assert_no_horizontal_scroll(page)


def assert_no_horizontal_scroll(page):
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways: {width}px wide at 390px"


def answer_with_keyboard(page):
    groups = page.evaluate(RADIO_GROUPS_JS)
    assert groups[0]["kind"] == "radio"
    for _ in range(15):  # Tab from the top of the page to the first question
        page.keyboard.press("Tab")
        if focused(page)["name"] == groups[0]["name"]:
            break
    else:
        raise AssertionError(f"Tab never reached the first question; focus is on {focused(page)}")
    for group in groups:
        now = focused(page)
        assert now["name"] == group["name"], f"expected focus on {group['name']}, got {now}"
        if group["kind"] == "text":
            page.keyboard.type("Sleeping better.")
        else:
            wanted = ANSWERS.get(group["name"], "no" if "no" in group["values"] else group["values"][0])
            page.keyboard.press("Space")  # selects the focused (first) choice
            for _ in range(group["values"].index(wanted)):
                page.keyboard.press("ArrowRight")  # moves to and selects the next choice
            checked = page.locator(f"input[name='{group['name']}']:checked")
            expect(checked).to_have_value(wanted)
        page.keyboard.press("Tab")
    return groups


def test_patient_checkin_on_a_phone_with_an_emergency_answer(phone, demo_procedure, screenshot):
    page = phone
    raw = make_checkin_link(demo_procedure)
    page.goto(reverse("checkin-start", args=[raw]))
    expect(page).to_have_url(re.compile(r"/checkin/$"))
    assert raw not in page.url
    expect(page.get_by_role("heading", name="How are you doing?")).to_be_visible()
    patient = demo_procedure.patient
    body = page.locator("body").inner_text()
    assert patient.family_name not in body and patient.mrn not in body

    check_form_accessibility(page)
    groups = answer_with_keyboard(page)
    assert "RF-01" in {g["name"] for g in groups}  # the first short page: the red flags
    submit = page.get_by_role("button", name="Send and continue")
    expect(submit).to_be_focused()
    assert submit.bounding_box()["height"] >= 44
    screenshot(page, "checkin-form.png")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/checkin/done/$"))
    banner = page.get_by_role("alert")
    heading = banner.get_by_role("heading", level=1)
    expect(heading).to_have_text(SPEC_EMERGENCY)
    expect(heading).to_be_visible()
    expect(heading).to_be_in_viewport()
    box = heading.bounding_box()
    assert box["y"] < 200, f"the emergency instruction starts {box['y']}px down the page"
    first_heading = page.locator("main h1, main h2").first
    expect(first_heading).to_have_text(SPEC_EMERGENCY)
    colours = heading.evaluate(
        "h => [getComputedStyle(h).color, getComputedStyle(h.closest('.emergency')).backgroundColor]"
    )
    assert colours[0] != colours[1]
    assert_no_horizontal_scroll(page)
    screenshot(page, "checkin-emergency.png")

    report = SymptomReport.objects.get(patient=patient, source="form")
    assert "RF-01" in report.red_flags and "pain_now" in report.unanswered  # saved at the first page
    assert Alert.objects.filter(patient=patient, code="RF-01", tier="emergency").exists()


# --- form POSTs from a real browser pass the CSRF check (the Referrer-Policy keeps the Origin header) ------------


def post_status(page, submit) -> int:
    with page.expect_response(lambda response: response.request.method == "POST") as info:
        submit.click()
    return info.value.status


@pytest.mark.parametrize("form", ["admin login", "patient check-in", "e-mail acknowledge"])
def test_form_posts_pass_the_csrf_check_in_a_real_browser(form, browser, live_server, coordinator, make_procedure):
    context, page = new_page(browser, live_server, **(PHONE if form == "patient check-in" else DESKTOP))
    try:
        if form == "admin login":
            page.goto(reverse("admin:login"))
            page.get_by_label("Username").fill(coordinator.username)
            page.get_by_label("Password").fill("correct-horse-battery")
            submit = page.get_by_role("button", name="Log in")
        elif form == "patient check-in":
            page.goto(reverse("checkin-start", args=[make_checkin_link(make_procedure())]))
            for group in page.evaluate(RADIO_GROUPS_JS):
                if group["kind"] == "radio":
                    value = "no" if "no" in group["values"] else group["values"][0]
                    page.locator(f"input[name='{group['name']}'][value='{value}']").check()
            submit = page.get_by_role("button", name="Send and continue")
        else:
            submit_report(procedure=make_procedure(), source="api", pain_now=7, red_flags=["RF-01"])
            raw = issue_acknowledge_link(alert=Alert.objects.get(code="RF-01"), user_id=coordinator.pk)
            page.goto(reverse("alert-acknowledge", args=[raw]))
            submit = page.get_by_role("button", name="Acknowledge and stop escalation")
        assert post_status(page, submit) != 403, page.locator("body").inner_text()
    finally:
        context.close()
