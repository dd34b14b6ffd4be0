"""FHIR R4 facade over the registry, the schedule and the red-flag rules (docs/fhir.md): what every
resource shares.

Every resource is built from, or mapped onto, the same services as the JSON API: `register_patient`,
`update_patient`, `record_procedure`, `complete_checkpoint` and `alerts.reports.submit_report`.
Resources are validated with fhir.resources' R4B models on the way in and on the way out; an invalid
incoming resource is a 400 OperationOutcome. Authentication, scopes and clinic isolation are the
JSON API's: another clinic's resource is a 404, and searches never return it.

This module holds the errors (OperationOutcome), rendering and validation, the small mapping helpers,
and `FHIRView`: the caller's clinics, searchset Bundles and created responses.
"""

import json
import re
from datetime import date, datetime
from typing import Any

import pydantic
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from rest_framework import exceptions, permissions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from patients.models import Patient

from ..auth import caller_clinic_ids

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "business-rule",
    429: "throttled",
    503: "transient",
}


# --- Errors -------------------------------------------------------------------------------------


class FHIRError(Exception):
    """Answered as an OperationOutcome with `status`."""

    def __init__(self, message: str, *, status_code: int = 400, code: str | None = None, path: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.issues = [_issue(message, code=code or ISSUE_CODES.get(status_code, "processing"), path=path)]


def _issue(message: str, *, code: str, path: str | None = None, severity: str = "error") -> dict:
    issue = {"severity": severity, "code": code, "diagnostics": " ".join(str(message).split())}
    if path:
        issue["expression"] = [path]
    return issue


def operation_outcome(issues: list[dict]) -> dict:
    return validated(OperationOutcome, {"resourceType": "OperationOutcome", "issue": issues})


def _drf_issues(data: Any, status_code: int, paths: dict[str, str]) -> list[dict]:
    """DRF's error body ({"detail": …} or {field: [messages]}) as OperationOutcome issues."""
    code = ISSUE_CODES.get(status_code, "exception" if status_code >= 500 else "processing")
    if isinstance(data, dict) and set(data) == {"detail"}:
        return [_issue(data["detail"], code=code)]
    if isinstance(data, dict):
        issues = []
        for field, messages in data.items():
            for message in messages if isinstance(messages, list | tuple) else [messages]:
                path = _field_path(field, paths)
                text = message if path or field in {"non_field_errors", "__all__"} else f"{field}: {message}"
                issues.append(_issue(text, code=code, path=path))
        return issues or [_issue(f"HTTP {status_code}", code=code)]
    if isinstance(data, list | tuple):
        return [_issue(message, code=code) for message in data] or [_issue(f"HTTP {status_code}", code=code)]
    return [_issue(str(data) if data else f"HTTP {status_code}", code=code)]


def _field_path(field: str, paths: dict[str, str]) -> str | None:
    if field in paths:
        return paths[field]
    match = re.fullmatch(r"levels\[(\d+)\]\.\w+", field)
    if match and "levels" in paths:
        return f"{paths['levels']}[{match.group(1)}]"
    return None


# --- Rendering and validation -------------------------------------------------------------------


class FHIRJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class FHIRPlainJSONRenderer(JSONRenderer):
    """For clients that ask for `application/json`: the same FHIR JSON."""


class FHIRJSONParser(JSONParser):
    media_type = "application/fhir+json"


class FHIRLegacyJSONParser(JSONParser):
    """`application/json+fhir`, the media type of FHIR DSTU2, which some clients still send."""

    media_type = "application/json+fhir"


FORMATS = {
    "json": "application/json",
    "application/json": "application/json",
    "fhir+json": "application/fhir+json",
    "application/fhir+json": "application/fhir+json",
    "application/json+fhir": "application/fhir+json",
}


class FHIRNegotiation(DefaultContentNegotiation):
    """`_format` (json, application/json, application/fhir+json or application/json+fhir) overrides
    `Accept`; `Accept: application/json+fhir` is answered as application/fhir+json."""

    def select_renderer(self, request, renderers, format_suffix=None):
        wanted = request.query_params.get("_format")
        if wanted is None and "application/json+fhir" in request.META.get("HTTP_ACCEPT", ""):
            wanted = "application/json+fhir"
        if wanted is None:
            return super().select_renderer(request, renderers, format_suffix)
        media_type = FORMATS.get(wanted.replace(" ", "+").lower())
        if media_type is None:
            raise exceptions.NotAcceptable(f"_format {wanted!r} is not supported; use json or application/fhir+json.")
        renderer = next(r for r in renderers if r.media_type == media_type)
        return renderer, media_type


def validated(model, data: dict) -> dict:
    """`data` checked against the R4B model and returned as the model serialises it."""
    return json.loads(model.model_validate(data).model_dump_json())


def _pydantic_issues(resource_type: str, exc: pydantic.ValidationError) -> list[dict]:
    issues = []
    for error in exc.errors():
        path = resource_type
        for part in error.get("loc", ()):
            if part == "resource_type":
                part = "resourceType"
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        issues.append(_issue(error.get("msg", "Invalid value."), code="structure", path=path))
    return issues or [_issue("The resource is not valid FHIR.", code="structure", path=resource_type)]


def parse_resource(request, model, resource_type: str) -> dict:
    """The request body as a validated `resource_type`, or a 400 OperationOutcome naming the problem."""
    body = request.data
    if not isinstance(body, dict) or not body:
        raise FHIRError(f"The body must be a FHIR {resource_type} resource (a JSON object).", code="structure")
    if body.get("resourceType") != resource_type:
        raise FHIRError(
            f"Expected resourceType {resource_type!r}, got {body.get('resourceType')!r}.",
            code="structure",
            path="resourceType",
        )
    try:
        return validated(model, dict(body))
    except pydantic.ValidationError as exc:
        error = FHIRError(f"Invalid {resource_type}.", code="structure")
        error.issues = _pydantic_issues(resource_type, exc)
        raise error from None
    except (ValueError, TypeError) as exc:
        raise FHIRError(f"Invalid {resource_type}: {exc}", code="structure") from None


# --- Small mapping helpers ----------------------------------------------------------------------


def date_of(value: Any, path: str, *, required: bool = True) -> date | None:
    """The calendar date of a FHIR date or dateTime (its own date, as written); partial dates refused."""
    if value in (None, ""):
        if required:
            raise FHIRError("A date is required here.", code="required", path=path)
        return None
    match = re.match(r"^(\d{4})-(\d{2})-(\d{2})", str(value))
    if not match:
        raise FHIRError(f"{value!r} is not a full date (YYYY-MM-DD).", path=path)
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        raise FHIRError(f"{value!r} is not a valid date.", path=path) from None


def instant_of(value: Any, path: str) -> datetime | None:
    if value in (None, ""):
        return None
    moment = parse_datetime(str(value).replace("Z", "+00:00"))
    if moment is None or moment.tzinfo is None:
        raise FHIRError("Give a date and time with a time-zone offset, e.g. 2026-03-10T09:00:00+00:00.", path=path)
    return moment


def reference_id(reference: dict | None, resource_type: str, path: str, *, required: bool = True) -> int | None:
    """The numeric id of a `resource_type/<id>` reference (relative or absolute)."""
    if not reference:
        if required:
            raise FHIRError(f"A reference to a {resource_type} is required.", code="required", path=path)
        return None
    text = (reference.get("reference") or "").rstrip("/")
    match = re.search(rf"(?:^|/){resource_type}/(\d+)(?:/_history/[^/]+)?$", text)
    if not match:
        raise FHIRError(f"Expected a reference of the form {resource_type}/<id>, got {text!r}.", path=path)
    return int(match.group(1))


def codes_in(concept: dict | None, system: str | None = None) -> list[str]:
    return [
        coding["code"]
        for coding in (concept or {}).get("coding", [])
        if coding.get("code") and (system is None or coding.get("system") == system)
    ]


def find_extension(resource: dict, url: str) -> dict | None:
    return next((ext for ext in resource.get("extension", []) if ext.get("url") == url), None)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def with_versions(rows):
    """`rows` annotated with their version (`fhir_version`, see versions.py) in the same query, so that a
    search costs the same number of queries whatever its size."""
    model = rows.model
    if hasattr(model, "history"):
        related, key = model.history.model, "id"
    elif hasattr(model, "events"):
        related, key = model.events.rel.related_model, model.events.field.name
    else:
        return rows
    counts = related.objects.filter(**{key: OuterRef("pk")}).order_by().values(key).annotate(n=Count("*"))
    return rows.annotate(fhir_version=Coalesce(Subquery(counts.values("n")), 1))


def version_of(row) -> int:
    """The row's version: the number of changes recorded for it (see versions.py)."""
    if getattr(row, "fhir_version", None) is not None:
        return max(1, row.fhir_version)
    history = getattr(type(row), "history", None)
    if history is not None:
        return max(1, row.history.count())
    if hasattr(row, "version"):
        return row.version
    if hasattr(row, "events"):
        return max(1, row.events.count())
    return 1


def meta(row) -> dict:
    return {"versionId": str(version_of(row)), "lastUpdated": row.updated_at.isoformat()}


def ref(resource_type: str, pk: int, display: str | None = None) -> dict:
    reference = {"reference": f"{resource_type}/{pk}"}
    if display:
        reference["display"] = display
    return reference


def drop_empty(data: dict) -> dict:
    return {key: value for key, value in data.items() if value not in (None, [], {}, "")}


def int_id(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d{1,18}", value or "") else None


def _search_id(value: str | None, resource_type: str) -> int | None:
    """A search parameter's id: `123` or `Patient/123`; anything else matches nothing."""
    if value is None:
        return None
    return int_id(value.rsplit(f"{resource_type}/", 1)[-1])


# --- Base view ----------------------------------------------------------------------------------


class FHIRView(APIView):
    """JSON in and out as FHIR; every error an OperationOutcome. Auth, scopes and throttling are the
    JSON API's defaults (Bearer token or staff session; read scope for GET, write scope otherwise)."""

    renderer_classes = [FHIRJSONRenderer, FHIRPlainJSONRenderer]
    parser_classes = [FHIRJSONParser, FHIRLegacyJSONParser, JSONParser]
    content_negotiation_class = FHIRNegotiation
    schema = None  # not part of the OpenAPI document: the CapabilityStatement describes this API
    field_paths: dict[str, str] = {}

    def handle_exception(self, exc):
        if isinstance(exc, FHIRError):
            return Response(operation_outcome(exc.issues), status=exc.status_code)
        if isinstance(exc, DjangoValidationError):
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            return Response(operation_outcome(_drf_issues(detail, 400, self.field_paths)), status=400)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        data = getattr(response, "data", None)
        if response.status_code >= 400 and not (isinstance(data, dict) and data.get("resourceType")):
            response.data = operation_outcome(_drf_issues(data, response.status_code, self.field_paths))
        version = (data.get("meta") or {}).get("versionId") if isinstance(data, dict) else None
        if version and response.status_code < 300 and data.get("resourceType") != "Bundle":
            response["ETag"] = f'W/"{version}"'
            if request.method == "GET" and _etag_matches(request.headers.get("If-None-Match"), version):
                response = Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": f'W/"{version}"'})
        return super().finalize_response(request, response, *args, **kwargs)

    # Scoping -------------------------------------------------------------------------------------

    def clinic_ids(self) -> list[int]:
        return caller_clinic_ids(self.request)

    def patients(self):
        return Patient.objects.filter(clinic_id__in=self.clinic_ids()).select_related("clinic")

    def body_patient(self, reference: dict | None, path: str) -> Patient:
        """The patient a written resource refers to; one outside the caller's clinics is a 400, as in
        the JSON API (an unknown primary key in a request body)."""
        pk = reference_id(reference, "Patient", path)
        patient = self.patients().filter(pk=pk).first()
        if patient is None:
            raise FHIRError(f"Patient/{pk} does not exist among this client's patients.", path=path)
        return patient

    def actor(self):
        user = self.request.user
        return user if getattr(user, "pk", None) else None

    # Responses -----------------------------------------------------------------------------------

    def base_url(self) -> str:
        return self.request.build_absolute_uri(reverse("fhir-metadata")).removesuffix("metadata")

    def created(self, resource: dict, *, status_code: int = status.HTTP_201_CREATED) -> Response:
        """A created (201) or matched (200) resource, with `Location` naming its version."""
        version = resource["meta"]["versionId"]
        location = f"{self.base_url()}{resource['resourceType']}/{resource['id']}/_history/{version}"
        return Response(resource, status=status_code, headers={"Location": location})

    def matched(self, resource: dict) -> Response:
        """The existing resource a conditional or repeated create found: 200, and nothing written."""
        return self.created(resource, status_code=status.HTTP_200_OK)

    def bundle(self, resources: list[dict], *, total: int | None = None, links: list[dict] | None = None) -> Response:
        base = self.base_url()
        data = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources) if total is None else total,
            "link": links or [{"relation": "self", "url": self.request.build_absolute_uri()}],
            "entry": [
                {
                    "fullUrl": f"{base}{resource['resourceType']}/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource in resources
            ],
        }
        return Response(validated(Bundle, drop_empty(data)))

    def search_patient_id(self, params=None, names: tuple[str, ...] = ("patient", "subject")) -> int | None:
        """The patient a search is limited to. It is required, except with `_id` or `_lastUpdated`
        (incremental sync over all of the client's clinics); None when not given."""
        params = self.request.query_params if params is None else params
        value = next((params.get(name) for name in names if params.get(name) is not None), None)
        if value is None:
            if "_id" in params or "_lastUpdated" in params:
                return None
            example = f"?{names[0]}=123"
            raise FHIRError(f"Give the {names[0]} search parameter, e.g. {example}.", code="required", path=names[0])
        return _search_id(value, "Patient") or 0


def _etag_matches(header: str | None, version: str) -> bool:
    """If-None-Match names this version (`W/"3"`, `"3"` or `3`, as fhirpy's refresh() sends it)."""
    if not header:
        return False
    return any(tag.strip().removeprefix("W/").strip('"') in {version, "*"} for tag in header.split(","))


class NotFoundView(FHIRView):
    """Anything under /fhir/ that is not one of the interactions of the CapabilityStatement."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def _unknown(self, request, *args, **kwargs):
        raise FHIRError(f"{request.method} {request.path} is not supported here; see metadata.", status_code=404)

    get = post = put = patch = delete = _unknown
