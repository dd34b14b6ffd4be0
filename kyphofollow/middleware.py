"""Request-level guards: the audit source of each request, one access-log line per request without PHI,
and 413 for oversized bodies."""

import logging
import time

from django.conf import settings
from django.http import JsonResponse
from django.urls import Resolver404, resolve

from patients.audit import acting

logger = logging.getLogger("kyphofollow.access")
API_PREFIXES = ("/api/", "/fhir/")


def _route(path: str, match=None) -> str:
    """The URL pattern, not the path: `/api/v1/patients/by-mrn/<mrn>/` never logs the MRN itself,
    and check-in and acknowledge tokens never reach the log. `match` is Django's own resolution of
    the request when it has one; only a path that never reached URL resolution is resolved here."""
    if match is None:
        try:
            match = resolve(path)
        except Resolver404:
            return "<unmatched>"
    return "/" + match.route.lstrip("^").rstrip("$")


class AccessLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        client = getattr(request, "auth", None)
        who = (
            f"client:{client.pk}"
            if getattr(client, "token_hash", None)
            else (
                f"user:{request.user.pk}" if getattr(request, "user", None) and request.user.is_authenticated else "-"
            )
        )
        logger.info(
            "%s %s %s %.1fms %s",
            request.method,
            _route(request.path_info, getattr(request, "resolver_match", None)),
            response.status_code,
            (time.monotonic() - started) * 1000,
            who,
        )
        return response


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIXES):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
            if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                return JsonResponse(
                    {"detail": f"Request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."},
                    status=413,
                )
        return self.get_response(request)


class RouteOnlyFilter(logging.Filter):
    """Rewrite request paths in Django's request log lines to their route patterns."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path_info", None)
        if path and isinstance(record.args, tuple):
            record.args = tuple(
                _route(arg) if arg == path or arg == getattr(request, "path", None) else arg for arg in record.args
            )
        elif isinstance(record.args, tuple) and record.name == "django.server":
            record.args = tuple(_redact_request_line(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def _redact_request_line(line: str) -> str:
    """`GET /path?query HTTP/1.1` → `GET /route HTTP/1.1`."""
    parts = line.split(" ")
    if len(parts) == 3 and parts[1].startswith("/"):
        parts[1] = _route(parts[1].split("?", 1)[0])
        return " ".join(parts)
    return line


AUDIT_SOURCES_BY_PREFIX = (
    ("/admin/", "admin"),
    ("/api/", "api"),
    ("/fhir/", "fhir"),
    ("/c/", "form"),
    ("/checkin/", "form"),
    ("/ack/", "email-link"),
)


class AuditContextMiddleware:
    """Stamps everything a request writes with the entry point it came through (admin, API, FHIR, form, link)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        source = next(
            (name for prefix, name in AUDIT_SOURCES_BY_PREFIX if request.path_info.startswith(prefix)), "system"
        )
        with acting(source):
            return self.get_response(request)
