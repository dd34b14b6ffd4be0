"""Who is acting, and through what: the context every audit record is stamped with.

Set per request by `AuditContextMiddleware` (admin, API, FHIR, patient form, e-mail link), per
machine client by the bearer authentication, and per Celery task by a signal in `celery.py`.
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
_PREFIXES = (
    ("/admin/", "admin"),
    ("/api/", "api"),
    ("/fhir/", "fhir"),
    ("/c/", "form"),
    ("/checkin/", "form"),
    ("/ack/", "email-link"),
)


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


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        source = next((name for prefix, name in _PREFIXES if request.path_info.startswith(prefix)), "system")
        with acting(source):
            return self.get_response(request)
