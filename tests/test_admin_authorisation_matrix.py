"""Admin pages and e-mailed links against every kind of caller; the table of outcomes is written to
artifacts/admin-authorisation-matrix.md for review."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.messages import issue_acknowledge_link
from alerts.models import Alert, AlertState, CheckIn, CheckInLink, new_token
from alerts.reports import submit_report

pytestmark = pytest.mark.django_db
ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "admin-authorisation-matrix.md"


@pytest.fixture
def world(make_patient, make_procedure, clinician):
    patient = make_patient(mrn="MATRIX-1", responsible_clinician=clinician)
    procedure = make_procedure(patient=patient, performed_on=timezone.localdate() - timedelta(days=3))
    submit_report(procedure=procedure, source="api", pain_now=6, red_flags=["RF-05"])
    return patient, procedure, Alert.objects.get()


def checkin_link(procedure, *, expired=False, used=False) -> str:
    checkin = CheckIn.objects.create(patient=procedure.patient, procedure=procedure, reason="matrix")
    raw, digest = new_token()
    CheckInLink.objects.create(
        checkin=checkin,
        token_hash=digest,
        expires_at=timezone.now() + (timedelta(days=-1) if expired else timedelta(days=7)),
        used_at=timezone.now() if used else None,
    )
    return reverse("checkin-start", args=[raw])


def test_admin_pages_and_links_answer_each_caller_as_they_should(
    client, world, coordinator, other_clinic_coordinator, clinician
):
    patient, procedure, alert = world
    callers = {"anonymous": None, "own coordinator": coordinator, "other clinic coordinator": other_clinic_coordinator}
    pages = {
        "worklist": (
            reverse("admin:index"),
            {"anonymous": 302, "own coordinator": 200, "other clinic coordinator": 200},
        ),
        "patient list": (
            reverse("admin:patients_patient_changelist"),
            {"anonymous": 302, "own coordinator": 200, "other clinic coordinator": 200},
        ),
        "patient change page": (
            reverse("admin:patients_patient_change", args=[patient.pk]),
            {"anonymous": 302, "own coordinator": 200, "other clinic coordinator": 302},
        ),
        "patient overview": (
            reverse("admin:patient-overview", args=[patient.pk]),
            {"anonymous": 302, "own coordinator": 200, "other clinic coordinator": 404},
        ),
        "alert change page": (
            reverse("admin:alerts_alert_change", args=[alert.pk]),
            {"anonymous": 302, "own coordinator": 200, "other clinic coordinator": 302},
        ),
        "KPIs": (reverse("kpis"), {"anonymous": 302, "own coordinator": 200, "other clinic coordinator": 200}),
        "import": (
            reverse("patients-import"),
            {"anonymous": 302, "own coordinator": 200, "other clinic coordinator": 200},
        ),
    }
    rows, broken = [], []
    for page, (url, expected) in pages.items():
        cells = []
        for name, user in callers.items():
            browser = Client()
            if user:
                browser.force_login(user)
            status = browser.get(url).status_code
            ok = status == expected[name]
            if name == "other clinic coordinator" and status == 200:
                ok = ok and "MATRIX-1" not in browser.get(url).content.decode()
            cells.append(f"{status} ({expected[name]}){'' if ok else ' ✗'}")
            if not ok:
                broken.append((page, name, status))
        rows.append(f"| {page} | " + " | ".join(cells) + " |")

    # Links from e-mails: check-in links and acknowledge links, good and bad.
    ack = reverse("alert-acknowledge", args=[issue_acknowledge_link(alert=alert, user_id=clinician.pk)])
    links = {
        "check-in link, fresh": (checkin_link(procedure), 302),
        "check-in link, expired": (checkin_link(procedure, expired=True), 410),
        # Opening a link changes nothing: opened before, it opens the form again until answered (#13).
        "check-in link, opened before": (checkin_link(procedure, used=True), 302),
        "check-in link, forged": (reverse("checkin-start", args=["forged-token"]), 404),
        "acknowledge link, forged": (reverse("alert-acknowledge", args=["forged-token"]), 404),
        "acknowledge link, fresh (GET changes nothing)": (ack, 200),
    }
    for name, (url, expected) in links.items():
        status = Client().get(url).status_code
        ok = status == expected
        rows.append(f"| {name} | {status} ({expected}){'' if ok else ' ✗'} | | |")
        if not ok:
            broken.append((name, "anyone", status))
    assert Client().post(ack).status_code == 200
    assert Client().post(ack).status_code == 410  # used
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED

    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(
        "# Admin and link authorisation matrix\n\nWritten by `tests/test_admin_authorisation_matrix.py`. "
        "Each cell: status received (expected); ✗ marks a broken rule. Another clinic's coordinator may open "
        "clinic-wide pages, which then show none of this clinic's patients.\n\n"
        "| page or link | " + " | ".join(callers) + " |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    assert broken == []
