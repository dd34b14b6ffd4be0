"""First run of `make run`: a front page, a sign-in without a code field when 2FA is off, demo links to
the port served on, quiet start-up logs, and demo data with open alerts, an acknowledged one and
call tasks, swept once so that the worklist is filled on the first visit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse

from alerts.models import Alert, AlertState, CheckIn, CheckInState
from patients.demo import DEMO_CLINIC_SLUG, seed_demo
from patients.models import Checkpoint, CheckpointState, Patient

ROOT = Path(__file__).resolve().parent.parent
PRINT_SITE_URL = "from django.conf import settings; print(settings.SITE_URL)"


@pytest.mark.django_db
def test_the_front_page_links_to_staff_sign_in_api_docs_and_health(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    for name in ("admin:index", "api-docs", "health"):
        assert f'href="{reverse(name)}"' in page
    assert "Staff sign-in" in page and "API documentation" in page
    assert "<main" in page and "<nav" in page


@pytest.mark.django_db
def test_the_sign_in_page_has_no_code_field_when_2fa_is_off_and_one_when_it_is_on(client, settings):
    settings.STAFF_REQUIRE_2FA = False
    page = client.get(reverse("admin:login")).content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    assert "otp_token" not in page and "OTP" not in page

    settings.STAFF_REQUIRE_2FA = True
    assert 'name="otp_token"' in client.get(reverse("admin:login")).content.decode()


def test_axes_prints_no_banner():
    assert django_settings.AXES_VERBOSE is False


def site_url(tmp_path, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in {"SITE_URL", "PORT", "DJANGO_ENV"}}
    clean |= {"VAR_DIR": str(tmp_path), **env}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", PRINT_SITE_URL],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "AXES" not in result.stdout + result.stderr  # one-line start-up: no banner
    return result.stdout.strip()


def test_demo_links_use_the_address_make_run_serves_on(tmp_path):
    assert site_url(tmp_path) == "http://127.0.0.1:8000"
    assert site_url(tmp_path, PORT="8890") == "http://127.0.0.1:8890"
    (tmp_path / "site-url").write_text("http://127.0.0.1:8891\n")  # written by `make run` while it serves
    assert site_url(tmp_path) == "http://127.0.0.1:8891"
    assert site_url(tmp_path, SITE_URL="https://follow-up.example.org") == "https://follow-up.example.org"


@pytest.mark.django_db
def test_the_demo_has_open_alerts_in_two_tiers_an_acknowledged_one_call_tasks_phones_and_a_swept_worklist(capsys):
    seed_demo()
    call_command("start_demo")
    assert "Demo: 4 alerts raised; first sweep done." in capsys.readouterr().out

    alerts = Alert.objects.filter(clinic__slug=DEMO_CLINIC_SLUG)
    assert set(alerts.filter(state=AlertState.OPEN).values_list("tier", flat=True)) == {"emergency", "urgent"}
    assert alerts.filter(state=AlertState.ACKNOWLEDGED).count() == 1
    assert CheckIn.objects.filter(state=CheckInState.CALL_NEEDED).count() >= 3
    assert not Patient.objects.filter(clinic__slug=DEMO_CLINIC_SLUG, phone="").exists()
    # The first sweep ran: checkpoints whose window has opened are due (or missed), not still scheduled.
    assert Checkpoint.objects.filter(state__in=[CheckpointState.DUE, CheckpointState.MISSED]).exists()

    call_command("start_demo")  # a second `make run` adds nothing
    assert alerts.count() == 4
