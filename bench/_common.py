"""Shared helpers for the benchmarks: a throw-away PostgreSQL database, Django set-up, output.

Each benchmark creates its own database next to the one DATABASE_URL names (same server and
credentials), migrates it with `manage.py migrate` in a subprocess, points this process (and any
subprocess it starts) at it, and drops it at the end. Celery tasks go to a queue of their own on
the REDIS_URL broker, so a test worker sharing the Redis database never sees them, and that queue
alone is purged.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
BENCH_QUEUE = f"kyphofollow-bench-{os.getpid()}"  # per process: concurrent bench runs never mix
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/kyphofollow"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so that `finally` blocks drop the bench database


signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _conninfo(url: str) -> str:
    """psycopg wants postgresql:// (or postgres://); strip Django-only schemes like pgsql://."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme in {"postgres", "postgresql", "pgsql", "psql"} else url


def base_urls() -> tuple[str, str]:
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL), os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


@contextmanager
def bench_database(label: str):
    """Create, migrate, yield the URL of, and finally drop a database for one benchmark."""
    import psycopg

    base_url, redis_url = base_urls()
    name = f"kyphofollow_bench_{label}_{os.getpid()}"
    admin = _conninfo(_with_database(base_url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(base_url, name)
    env = bench_env(url, redis_url)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        yield url
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110 - Django may never have been set up
            pass
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="kyphofollow.settings",
        # As in production: no per-query log kept in memory by Django.
        DEBUG="false",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def setup_django() -> None:
    """Set up Django against os.environ's DATABASE_URL; route Celery tasks to the bench queue."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kyphofollow.settings")
    os.environ.setdefault("DEBUG", "false")
    import django

    django.setup()
    from kyphofollow.celery import app

    app.conf.task_default_queue = BENCH_QUEUE


def queue_length() -> int:
    from kyphofollow.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.client.llen(BENCH_QUEUE)


def purge_queue() -> int:
    from kyphofollow.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(BENCH_QUEUE) or 0


def raw_connection(url: str):
    import psycopg

    return psycopg.connect(_conninfo(url))


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


_lines: list[str] = []


def bench(name: str, value: float, unit: str) -> None:
    line = f"BENCH {name} {value:.4g} {unit}" if isinstance(value, float) else f"BENCH {name} {value} {unit}"
    _lines.append(line)
    print(line, flush=True)


def note(text: str) -> None:
    """Context for a human, on stderr so that stdout holds only BENCH lines."""
    print(f"# {text}", file=sys.stderr, flush=True)


def write_artifact(filename: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / filename).write_text("\n".join(_lines) + "\n")


_ZERO = {
    "boolean": "false",
    "jsonb": "'{}'::jsonb",
    "json": "'{}'::json",
    "text": "''",
    "character varying": "''",
    "ARRAY": "'{}'",
    "time without time zone": "time '00:00'",
}


def insert_select(conn, table: str, exprs: dict[str, str], tail: str, params=None):
    """`INSERT INTO table (...) SELECT ... <tail>` with `exprs` (column -> SQL expression); any other
    NOT NULL column without a default (one added by a newer migration) gets its type's zero value."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL AND column_name <> 'id'",
        (table,),
    ).fetchall()
    exprs = dict(exprs)
    for column, data_type in rows:
        if column not in exprs:
            exprs[column] = _ZERO.get(data_type, "0")
    columns = ", ".join(exprs)
    values = ", ".join(exprs.values())
    return conn.execute(f"INSERT INTO {table} ({columns}) SELECT {values} {tail}", params)
