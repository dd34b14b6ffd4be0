"""Who is acting, and through what: the context every audit record is stamped with.

Set per request by `kyphofollow.middleware.AuditContextMiddleware` (admin, API, FHIR, patient form,
e-mail link), per machine client by the bearer authentication, and per Celery task by a signal in
`kyphofollow/celery.py`. It lives with the registry because every audited row reads it.
"""

import contextvars
from contextlib import contextmanager

_source = contextvars.ContextVar("audit_source", default="system")
_client = contextvars.ContextVar("audit_api_client", default=None)

SOURCES = [
    ("admin", "Admin"),
    ("api", "REST API"),
    ("fhir", "FHIR API"),
    ("form", "Patient form"),
    ("email-link", "E-mail link"),
    ("task", "Background task"),
    ("command", "Management command"),
    ("system", "System"),
]


def current_source() -> str:
    return _source.get()


def current_client_id() -> int | None:
    return _client.get()


def set_client(client_id: int | None) -> None:
    _client.set(client_id)


@contextmanager
def acting(source: str, client_id: int | None = None):
    source_token, client_token = _source.set(source), _client.set(client_id)
    try:
        yield
    finally:
        _source.reset(source_token)
        _client.reset(client_token)


def act_as_task() -> None:
    """Whatever the current Celery task writes is audited as done by a background task."""
    _source.set("task")
    _client.set(None)
