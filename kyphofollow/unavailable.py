"""A database outage answers 503, never 500, on every page: JSON on the REST API, an OperationOutcome
on FHIR, and a page in words for patients and staff. Nothing was saved, so the page says so; a patient
whose unsaved answers hold a red flag is told at once what to do, because no clinician will hear of it
from us until the answers are sent again. [DESIGN]

Two entry points share one response: `DatabaseUnavailableMiddleware.process_exception` for errors
raised in a view, and `server_error` (the URLconf's handler500) for errors raised in a middleware,
such as loading or saving the session."""

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from alerts.rules import TIER_ORDER, get_rules
from interop.errors import DATABASE_ERRORS
from interop.errors import DATABASE_UNAVAILABLE as API_DETAIL
from interop.fhir.base import ISSUE_CODES
from patients.protocol import latest_version

RETRY_AFTER_SECONDS = "30"
PATIENT_PATHS = ("/checkin/", "/c/", "/ack/")


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            return unavailable_response(request)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database error raised outside a view is still a 503."""
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        return unavailable_response(request)
    return defaults.server_error(request)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": API_DETAIL}, status=503)
    elif request.path.startswith("/fhir/"):
        issue = {"severity": "error", "code": ISSUE_CODES[503], "diagnostics": API_DETAIL}
        response = JsonResponse(
            {"resourceType": "OperationOutcome", "issue": [issue]}, status=503, content_type="application/fhir+json"
        )
    else:
        response = render(request, "database_unavailable.html", _page_context(request), status=503)
    response["Retry-After"] = RETRY_AFTER_SECONDS
    response["Cache-Control"] = "no-store"
    return response


def _page_context(request: HttpRequest) -> dict:
    patient = request.path.startswith(PATIENT_PATHS)
    return {"patient": patient, "tier": _unsent_red_flag_tier(request) if patient else None, **_wording()}


def _wording() -> dict:
    return {"wording": get_rules(latest_version()).wording}


def _unsent_red_flag_tier(request: HttpRequest) -> str | None:
    """The highest tier among the red flags answered "yes" in the POST that could not be saved, read
    with the newest protocol's questions (the check-in's own version is in the database)."""
    if request.method != "POST":
        return None
    tiers = [
        flag.tier
        for flag in get_rules(latest_version()).red_flags
        if "yes" in (request.POST.get(name) for name in (flag.id, *flag.also_when_yes))
    ]
    return max(tiers, key=TIER_ORDER.__getitem__) if tiers else None
