"""`make run`'s stack (web, worker, beat) comes up with no server: SQLite and the filesystem broker."""

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def serverless_env(var_dir: Path, port: int) -> dict[str, str]:
    dropped = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        {
            "VAR_DIR": str(var_dir),
            "PATH": f"{BIN}:{env['PATH']}",
            "PYTHONUNBUFFERED": "1",
            "PORT": str(port),
            "SITE_URL": f"http://127.0.0.1:{port}",
        }
    )
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def fetch(opener, url, data=None):
    try:
        with opener.open(url, data=data, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None, ""


def login(opener, base, jar):
    fetch(opener, f"{base}/admin/login/")
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"username": "coordinator", "password": "kyphofollow-demo", "csrfmiddlewaretoken": token, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"})
    return fetch(opener, request)


@pytest.mark.worker
def test_serverless_stack_serves_the_demo_and_runs_worker_and_beat(tmp_path):
    port = free_port()
    env = serverless_env(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    manage(env, "migrate", "--noinput")
    first = manage(env, "seed_demo").stdout
    again = manage(env, "seed_demo").stdout
    assert "20 patients created" in first
    assert "0 patients created, 20 already there" in again

    log = open(tmp_path / "honcho.log", "wb")  # noqa: SIM115
    stack = subprocess.Popen(
        [str(BIN / "honcho"), "start", "--port", str(port), "--procfile", "Procfile"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        health = wait_until(
            lambda: (lambda s, b: json.loads(b) if s == 200 else None)(*fetch(opener, f"{base}/health/")),
            timeout=90,
            interval=1,
            message="/health/ to answer 200 from the serverless stack",
        )
        assert health["checks"]["broker"]["transport"] == "filesystem"
        first_beat = health["checks"]["worker"]["last_heartbeat"]

        status, _ = login(opener, base, jar)
        assert status == 200
        status, page = fetch(opener, f"{base}/admin/patients/patient/")
        assert status == 200
        assert len(set(re.findall(r"DEMO\d{4}", page))) == 20

        # The demo patient's check-in link: an emergency answer shows the instruction at once and
        # the clinician's page lands in var/mail/ within seconds.
        link = manage(env, "demo_checkin_link").stdout.strip()
        status, form_page = fetch(opener, link)
        assert status == 200 and "How are you doing?" in form_page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form_page).group(1)
        answers = {f"RF-{n:02d}": "no" for n in range(2, 11)} | {
            "RF-01": "yes",
            "pain_now": "6",
            "pain_average_24h": "5",
            "painkillers": "none",
            "fell_since_last": "no",
            "missed_medication_doses": "na",
            "medication_side_effects": "na",
            "wearing_brace": "na",
            "doing_physio": "no",
            "SO-2": "yes",
            "SO-4": "no",
            "csrfmiddlewaretoken": token,
        }
        request = urllib.request.Request(
            f"{base}/checkin/", data=urllib.parse.urlencode(answers).encode(), headers={"Referer": f"{base}/checkin/"}
        )
        status, done_page = fetch(opener, request)
        assert status == 200
        assert "Call emergency services now" in done_page
        wait_until(
            lambda: any(
                "EMERGENCY: a patient needs review now" in p.read_text() for p in (tmp_path / "mail").glob("*")
            ),
            timeout=30,
            interval=0.5,
            message="the clinician's page in var/mail/",
        )

        # Beat ticks the heartbeat task every 30 s; the worker runs it and the heartbeat moves on.
        wait_until(
            lambda: json.loads(fetch(opener, f"{base}/health/")[1])["checks"]["worker"]["last_heartbeat"] != first_beat,
            timeout=75,
            interval=2,
            message="a heartbeat sent by beat and run by the worker",
        )
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            raise
        log.close()
    time.sleep(0.5)
    assert fetch(opener, f"{base}/health/")[0] is None, "web still answers after Ctrl-C"
