"""Loaded with `-p tests.parallel` by `make test`, which runs the suite on two pytest-xdist workers.

Each worker gets its own PostgreSQL test database (pytest-django names it `test_<name>_gw<n>`) and,
from this plugin, its own Redis database: the Celery worker processes a test starts consume the
default queue of their Redis database, and must never take another worker's tasks (they would look
for the rows in the wrong database). The plugin runs before Django's settings are read, so
`REDIS_URL` in the environment is all it changes; subprocesses inherit it.

Worker gw<n> uses the Redis database `n + 1` below the one `REDIS_URL` names (db 15 → 14, 13)."""

import os
from urllib.parse import urlsplit, urlunsplit

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    _url = urlsplit(os.environ["REDIS_URL"])
    _base = int(_url.path.strip("/") or 0)
    _db = _base - int(_worker[2:]) - 1
    if _db < 0:
        raise RuntimeError(f"REDIS_URL names Redis database {_base}: too low to give each test worker its own")
    os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_db}"))
