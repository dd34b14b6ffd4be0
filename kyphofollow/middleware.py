"""Request-level guards: the audit source of each request, one access-log line per request without PHI,
413 for oversized bodies, 415 for JSON that is not UTF-8 and 400 for JSON nested too deep."""

import logging
import re
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


# JSON nested deeper than this is refused before any parser sees it (Python's json recursion then
# never decides the answer, and a 1 MiB body of brackets cannot cost a worker more than one scan). [DESIGN]
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `body` opens more than `limit` arrays/objects inside one another (strings skipped)."""
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET):
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


class BodySizeLimitMiddleware:
    """API bodies over DATA_UPLOAD_MAX_MEMORY_SIZE get 413 before they are read; a JSON body anywhere
    gets 415 unless it is UTF-8 (a charset such as `bz2_codec` would otherwise be honoured while
    decoding, inflating a tiny body in the worker), and 400 when nested deeper than MAX_JSON_DEPTH."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIXES):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
            if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                return _refuse(
                    request, f"Request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.", 413
                )
        if _is_json(request.content_type or ""):
            charset = (request.content_params or {}).get("charset", "utf-8").strip().lower()
            if charset not in {"utf-8", "utf8"}:
                return _refuse(request, "Unsupported charset in Content-Type: JSON bodies must be UTF-8.", 415)
            if json_depth_exceeds(request.body):
                return _refuse(request, f"JSON nested deeper than {MAX_JSON_DEPTH} levels.", 400)
        return self.get_response(request)


def _refuse(request, message: str, status: int) -> JsonResponse:
    """The error as the entry point speaks it: an OperationOutcome on /fhir/, `{"detail": ...}` elsewhere."""
    if request.path_info.startswith("/fhir/"):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "structure", "diagnostics": message}],
        }
        return JsonResponse(outcome, status=status, content_type="application/fhir+json")
    return JsonResponse({"detail": message}, status=status)


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
