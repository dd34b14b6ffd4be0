"""FHIR R4 facade over the registry, the schedule and the red-flag rules (docs/fhir.md).

Every resource is built from, or mapped onto, the same services as the JSON API: `register_patient`,
`update_patient`, `record_procedure`, `complete_checkpoint` and `alerts.alerting.submit_report`.
Resources are validated with fhir.resources' R4B models on the way in and on the way out; an invalid
incoming resource is a 400 OperationOutcome. Authentication, scopes and clinic isolation are the
JSON API's: another clinic's resource is a 404, and searches never return it.
"""

import json
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pydantic
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.procedure import Procedure as FhirProcedure
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.task import Task
from rest_framework import permissions, status
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from patients import services
from patients.auth import caller_clinic_ids, idempotent
from patients.models import (
    Checkpoint,
    CheckpointState,
    Clinic,
    Patient,
    PatientStatus,
    Procedure,
    ProcedureKind,
    Sex,
)

from . import alerting
from .forms import CheckInForm
from .models import Alert, AlertState, PainkillerUse, SymptomReport
from .rules import SO_ANSWERS, Rules, get_rules

# --- Code systems and extensions ----------------------------------------------------------------

BASE = "https://kyphofollow.invalid"
SYSTEM_RULE = f"{BASE}/rule"
SYSTEM_VERTEBRA = f"{BASE}/vertebra"
SYSTEM_PROCEDURE_KIND = f"{BASE}/procedure-kind"
SYSTEM_CHECKPOINT = f"{BASE}/checkpoint"
SYSTEM_CHECKPOINT_OUTPUT = f"{BASE}/checkpoint-output"
SYSTEM_AUDIENCE = f"{BASE}/audience"
SYSTEM_TIER = f"{BASE}/tier"
SYSTEM_ANSWER = f"{BASE}/answer"
SYSTEM_PAINKILLERS = f"{BASE}/painkillers"
STRUCTURE = f"{BASE}/fhir/StructureDefinition"
EXT_FINDING = f"{STRUCTURE}/finding"
EXT_EMAIL_CONSENT = f"{STRUCTURE}/email-consent"
EXT_FRACTURE_DIAGNOSED = f"{STRUCTURE}/fracture-diagnosed-on"
EXT_BASELINE_PAIN = f"{STRUCTURE}/baseline-pain"
EXT_TARGET_DATE = f"{STRUCTURE}/target-date"
EXT_ALERT_STATE = f"{STRUCTURE}/alert-state"
EXT_COMPLETED_CHECKPOINT = f"{STRUCTURE}/completed-checkpoint"
EXT_TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
BCP47 = "urn:ietf:bcp:47"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
QUESTIONNAIRE_ID = "kyphofollow-checkin"
QUESTIONNAIRE_URL = f"{BASE}/fhir/Questionnaire/{QUESTIONNAIRE_ID}"
FHIR_VERSION = "4.3.0"  # R4B: the models every resource is validated with

PAIN_LOINC = {
    "system": LOINC,
    "code": "72514-3",
    "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
}

# DXA T-score codes that complete CP-06 / CP-13 (docs/fhir.md). Any DXA T-score site is accepted: the
# risk profile keeps the lowest T-score the clinician reports, whatever the site.
DXA_T_SCORE_CODES = {
    "38267-1": "DXA Lumbar spine [T-score] Bone density",
    "104938-6": "DXA Spine [T-score] Bone density",
    "38264-8": "DXA Hip [T-score] Bone density",
    "38263-0": "DXA Femur [T-score] Bone density",
}
T_SCORE_UNITS = {"{T-score}", "{Tscore}", "T-score", "Tscore", "SD", "{SD}", "1"}

# Osteoporosis medicines that complete CP-07 (docs/fhir.md): ATC codes (prefix match) or names.
OSTEOPOROSIS_ATC_PREFIXES = ("M05BA", "M05BB", "M05BX03", "M05BX04", "H05AA02")
OSTEOPOROSIS_DRUG_NAMES = (
    "alendron",
    "risedron",
    "ibandron",
    "zoledron",
    "etidron",
    "denosumab",
    "teriparatide",
    "abaloparatide",
    "romosozumab",
    "raloxifene",
    "bazedoxifene",
    "strontium ranelate",
    "fosamax",
    "actonel",
    "boniva",
    "bonviva",
    "aclasta",
    "reclast",
    "prolia",
    "forteo",
    "forsteo",
    "tymlos",
    "evenity",
    "evista",
)

TASK_STATUS = {
    CheckpointState.SCHEDULED: "requested",
    CheckpointState.DUE: "ready",
    CheckpointState.COMPLETED: "completed",
    CheckpointState.MISSED: "failed",
    CheckpointState.CANCELLED: "cancelled",
}
LIVE_ALERT_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)
REPORT_BOOLEANS = (
    "fell_since_last",
    "missed_medication_doses",
    "medication_side_effects",
    "wearing_brace",
    "doing_physio",
)
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
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


def _date_of(value: Any, path: str, *, required: bool = True) -> date | None:
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


def _instant_of(value: Any, path: str) -> datetime | None:
    if value in (None, ""):
        return None
    moment = parse_datetime(str(value).replace("Z", "+00:00"))
    if moment is None or moment.tzinfo is None:
        raise FHIRError("Give a date and time with a time-zone offset, e.g. 2026-03-10T09:00:00+00:00.", path=path)
    return moment


def _reference_id(reference: dict | None, resource_type: str, path: str, *, required: bool = True) -> int | None:
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


def _codes(concept: dict | None, system: str | None = None) -> list[str]:
    return [
        coding["code"]
        for coding in (concept or {}).get("coding", [])
        if coding.get("code") and (system is None or coding.get("system") == system)
    ]


def _extension(resource: dict, url: str) -> dict | None:
    return next((ext for ext in resource.get("extension", []) if ext.get("url") == url), None)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _meta(row) -> dict:
    return {"lastUpdated": row.updated_at.isoformat()}


def _ref(resource_type: str, pk: int, display: str | None = None) -> dict:
    reference = {"reference": f"{resource_type}/{pk}"}
    if display:
        reference["display"] = display
    return reference


def _drop_empty(data: dict) -> dict:
    return {key: value for key, value in data.items() if value not in (None, [], {}, "")}


def _int_id(value: str) -> int | None:
    return int(value) if re.fullmatch(r"\d{1,18}", value or "") else None


def _search_id(value: str | None, resource_type: str) -> int | None:
    """A search parameter's id: `123` or `Patient/123`; anything else matches nothing."""
    if value is None:
        return None
    return _int_id(value.rsplit(f"{resource_type}/", 1)[-1])


# --- Base view ----------------------------------------------------------------------------------


class FHIRView(APIView):
    """JSON in and out as FHIR; every error an OperationOutcome. Auth, scopes and throttling are the
    JSON API's defaults (Bearer token or staff session; read scope for GET, write scope otherwise)."""

    renderer_classes = [FHIRJSONRenderer, FHIRPlainJSONRenderer]
    parser_classes = [FHIRJSONParser, JSONParser]
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
        return super().finalize_response(request, response, *args, **kwargs)

    # Scoping -------------------------------------------------------------------------------------

    def clinic_ids(self) -> list[int]:
        return caller_clinic_ids(self.request)

    def patients(self):
        return Patient.objects.filter(clinic_id__in=self.clinic_ids()).select_related("clinic")

    def body_patient(self, reference: dict | None, path: str) -> Patient:
        """The patient a written resource refers to; one outside the caller's clinics is a 400, as in
        the JSON API (an unknown primary key in a request body)."""
        pk = _reference_id(reference, "Patient", path)
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

    def created(self, resource: dict, location: str) -> Response:
        return Response(resource, status=status.HTTP_201_CREATED, headers={"Location": self.base_url() + location})

    def bundle(self, resources: list[dict]) -> Response:
        base = self.base_url()
        data = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": self.request.build_absolute_uri()}],
            "entry": [
                {
                    "fullUrl": f"{base}{resource['resourceType']}/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource in resources
            ],
        }
        return Response(validated(Bundle, _drop_empty(data)))

    def search_patient_id(self) -> int | None:
        value = self.request.query_params.get("patient") or self.request.query_params.get("subject")
        if value is None:
            raise FHIRError("Give the patient search parameter, e.g. ?patient=123.", code="required", path="patient")
        return _search_id(value, "Patient")


class NotFoundView(FHIRView):
    """Anything under /fhir/ that is not one of the interactions of the CapabilityStatement."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def _unknown(self, request, *args, **kwargs):
        raise FHIRError(f"{request.method} {request.path} is not supported here; see metadata.", status_code=404)

    get = post = put = patch = delete = _unknown


# --- CapabilityStatement ------------------------------------------------------------------------


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kyphofollow")
    except PackageNotFoundError:
        return "0"


class MetadataView(FHIRView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def get(self, request):
        def resource(kind, interactions, params=(), **extra):
            entry = {"type": kind, "interaction": [{"code": code} for code in interactions], **extra}
            if params:
                entry["searchParam"] = [{"name": name, "type": kind_} for name, kind_ in params]
            return entry

        data = {
            "resourceType": "CapabilityStatement",
            "id": "kyphofollow",
            "url": f"{BASE}/fhir/CapabilityStatement/kyphofollow",
            "name": "Kyphofollow",
            "title": "kyphofollow FHIR facade",
            "status": "active",
            "date": timezone.now().date().isoformat(),
            "publisher": "kyphofollow",
            "kind": "instance",
            "software": {"name": "kyphofollow", "version": _software_version()},
            "implementation": {
                "description": "Follow-up and red-flag alerting after kyphoplasty",
                "url": self.base_url(),
            },
            "fhirVersion": FHIR_VERSION,
            "format": ["application/fhir+json", "json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": "Bearer token per EHR client (scopes read/write, one or more clinics). "
                    "Another clinic's resource is 404. See docs/fhir.md.",
                    "security": {"cors": False, "description": "Authorization: Bearer <token>"},
                    "resource": [
                        resource(
                            "Patient",
                            ["read", "create", "update", "search-type"],
                            [("identifier", "token")],
                            updateCreate=False,
                        ),
                        resource("Procedure", ["read", "create", "search-type"], [("patient", "reference")]),
                        resource("Questionnaire", ["read"]),
                        resource(
                            "QuestionnaireResponse", ["read", "create", "search-type"], [("patient", "reference")]
                        ),
                        resource(
                            "Task",
                            ["read", "search-type"],
                            [("patient", "reference"), ("code", "token"), ("status", "token")],
                        ),
                        resource("Flag", ["read", "search-type"], [("patient", "reference"), ("status", "token")]),
                        resource("Observation", ["create"]),
                        resource("MedicationStatement", ["create"]),
                        resource("MedicationRequest", ["create"]),
                    ],
                }
            ],
        }
        return Response(validated(CapabilityStatement, data))


# --- Patient ------------------------------------------------------------------------------------


def mrn_system(clinic: Clinic) -> str:
    return f"{BASE}/mrn/{clinic.slug}"


def patient_resource(patient: Patient) -> dict:
    clinic = patient.clinic
    telecom = []
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    data = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": _meta(patient),
        "extension": [
            {"url": EXT_TIMEZONE, "valueCode": patient.time_zone},
            {"url": EXT_EMAIL_CONSENT, "valueBoolean": patient.email_consent},
        ],
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
                "system": mrn_system(clinic),
                "value": patient.mrn,
            }
        ],
        "active": patient.status == PatientStatus.ACTIVE,
        "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
        "telecom": telecom,
        "gender": patient.sex,
        "birthDate": patient.birth_date.isoformat(),
        "deceasedBoolean": True if patient.status == PatientStatus.DECEASED else None,
        "communication": [{"language": {"coding": [{"system": BCP47, "code": patient.language}]}, "preferred": True}],
        "managingOrganization": {"reference": f"Organization/{clinic.slug}", "display": clinic.name},
    }
    return validated(FhirPatient, _drop_empty(data))


PATIENT_PATHS = {
    "mrn": "Patient.identifier",
    "given_name": "Patient.name.given",
    "family_name": "Patient.name.family",
    "birth_date": "Patient.birthDate",
    "sex": "Patient.gender",
    "email": "Patient.telecom",
    "phone": "Patient.telecom",
    "language": "Patient.communication.language",
    "time_zone": f"Patient.extension('{EXT_TIMEZONE}')",
    "email_consent": f"Patient.extension('{EXT_EMAIL_CONSENT}')",
    "status": "Patient.active",
    "clinic": "Patient.managingOrganization",
}


def _mrn(data: dict) -> str:
    identifiers = data.get("identifier", [])
    marked = [i for i in identifiers if "MR" in _codes(i.get("type"), V2_0203) or "MR" in _codes(i.get("type"))]
    ours = [i for i in identifiers if str(i.get("system", "")).startswith(f"{BASE}/mrn/")]
    chosen = marked or ours or (identifiers if len(identifiers) == 1 else [])
    if not chosen:
        message = "Give the MRN as an identifier with a system and a value" + (
            " and type MR (v2-0203), to tell it from the other identifiers." if identifiers else "."
        )
        raise FHIRError(message, code="required", path="Patient.identifier")
    identifier = chosen[0]
    if not identifier.get("system") or not identifier.get("value"):
        raise FHIRError("The MRN identifier needs both a system and a value.", path="Patient.identifier")
    return identifier["value"]


def _language(data: dict) -> str | None:
    entries = data.get("communication", [])
    if not entries:
        return None
    entry = next((c for c in entries if c.get("preferred")), entries[0])
    codes = _codes(entry.get("language"), BCP47) or _codes(entry.get("language"))
    if not codes:
        raise FHIRError("communication.language needs a BCP-47 code.", path="Patient.communication.language")
    supported = {code for code, _ in settings.LANGUAGES}
    code = codes[0].lower()
    for candidate in (code, code.split("-")[0]):
        if candidate in supported:
            return candidate
    raise FHIRError(
        f"Language {codes[0]!r} is not supported; supported: {', '.join(sorted(supported))}.",
        path="Patient.communication.language",
    )


def patient_fields(data: dict, *, creating: bool) -> dict:
    """Model fields from a validated Patient. Replaced on update: identifier, name, birthDate, gender,
    telecom and communication. Kept on update when absent: time zone, e-mail consent and status."""
    names = data.get("name", [])
    if not names:
        raise FHIRError("A name (family and given) is required.", code="required", path="Patient.name")
    name = next((n for n in names if n.get("use") == "official"), names[0])
    given = " ".join(name.get("given", [])).strip()
    if not name.get("family") or not given:
        raise FHIRError("The name needs a family name and a given name.", code="required", path="Patient.name")
    gender = data.get("gender", Sex.UNKNOWN)
    if gender not in Sex.values:
        raise FHIRError(f"gender must be one of {', '.join(Sex.values)}.", path="Patient.gender")
    telecom = data.get("telecom", [])
    email = next((t.get("value", "") for t in telecom if t.get("system") == "email"), "")
    phone = next((t.get("value", "") for t in telecom if t.get("system") in {"phone", "sms"}), "")
    fields = {
        "mrn": _mrn(data),
        "given_name": given,
        "family_name": name["family"],
        "birth_date": _date_of(data.get("birthDate"), "Patient.birthDate"),
        "sex": gender,
        "email": email,
        "phone": phone,
        "language": _language(data) or "en",
    }
    zone = _extension(data, EXT_TIMEZONE)
    if zone is not None:
        fields["time_zone"] = zone.get("valueCode") or ""
    consent = _extension(data, EXT_EMAIL_CONSENT)
    if consent is not None:
        if not isinstance(consent.get("valueBoolean"), bool):
            raise FHIRError("The e-mail consent extension needs valueBoolean.", path=PATIENT_PATHS["email_consent"])
        fields["email_consent"] = consent["valueBoolean"]
    elif creating:
        fields["email_consent"] = False
    if data.get("deceasedBoolean") or data.get("deceasedDateTime"):
        fields["status"] = PatientStatus.DECEASED
    elif data.get("active") is False:
        fields["status"] = PatientStatus.WITHDRAWN
    elif data.get("active") is True or creating:
        fields["status"] = PatientStatus.ACTIVE
    return fields


class PatientTypeView(FHIRView):
    field_paths = PATIENT_PATHS

    def get(self, request):
        identifier = request.query_params.get("identifier")
        if not identifier:
            raise FHIRError("Search patients by identifier (the MRN), e.g. ?identifier=MRN123.", code="required")
        value = identifier.split("|", 1)[-1]
        rows = self.patients().filter(mrn=value).order_by("id")
        return self.bundle([patient_resource(patient) for patient in rows])

    @idempotent
    def post(self, request):
        data = parse_resource(request, FhirPatient, "Patient")
        fields = patient_fields(data, creating=True)
        clinic = self._clinic(data)
        fields.setdefault("time_zone", clinic.time_zone)
        patient = services.register_patient(clinic=clinic, **fields)
        return self.created(patient_resource(patient), f"Patient/{patient.pk}")

    def _clinic(self, data: dict) -> Clinic:
        clinics = Clinic.objects.filter(id__in=self.clinic_ids())
        organization = data.get("managingOrganization")
        if organization:
            slug = (organization.get("reference") or "").rsplit("Organization/", 1)[-1]
            clinic = (
                clinics.filter(slug=slug).first() if "Organization/" in (organization.get("reference") or "") else None
            )
            if clinic is None:
                raise FHIRError(
                    f"managingOrganization must be Organization/<clinic slug> of one of this client's clinics, "
                    f"got {organization.get('reference')!r}.",
                    path="Patient.managingOrganization",
                )
            return clinic
        found = list(clinics[:2])
        if len(found) != 1:
            raise FHIRError(
                "This client serves more than one clinic: give managingOrganization Organization/<clinic slug>.",
                code="required",
                path="Patient.managingOrganization",
            )
        return found[0]


class PatientInstanceView(FHIRView):
    field_paths = PATIENT_PATHS

    def get_patient(self, pk: str) -> Patient:
        patient = self.patients().filter(pk=_int_id(pk)).first() if _int_id(pk) else None
        if patient is None:
            raise FHIRError(f"Patient/{pk} is not known.", status_code=404)
        return patient

    def get(self, request, pk):
        return Response(patient_resource(self.get_patient(pk)))

    def put(self, request, pk):
        patient = self.get_patient(pk)
        data = parse_resource(request, FhirPatient, "Patient")
        if data.get("id") != pk:
            raise FHIRError(f"The resource id must equal the id in the URL ({pk}).", path="Patient.id")
        organization = (data.get("managingOrganization") or {}).get("reference")
        if organization and organization.rsplit("/", 1)[-1] != patient.clinic.slug:
            raise FHIRError("A patient cannot move to another clinic.", path="Patient.managingOrganization")
        fields = patient_fields(data, creating=False)
        patient = services.update_patient(patient=patient, reason="changed over FHIR", **fields)
        return Response(patient_resource(patient))


# --- Procedure ----------------------------------------------------------------------------------


def procedure_resource(procedure: Procedure) -> dict:
    extensions = []
    if procedure.fracture_diagnosed_on:
        extensions.append({"url": EXT_FRACTURE_DIAGNOSED, "valueDate": procedure.fracture_diagnosed_on.isoformat()})
    if procedure.baseline_pain is not None:
        extensions.append({"url": EXT_BASELINE_PAIN, "valueInteger": procedure.baseline_pain})
    data = {
        "resourceType": "Procedure",
        "id": str(procedure.pk),
        "meta": _meta(procedure),
        "extension": extensions,
        "status": "completed",
        "code": {
            "coding": [
                {"system": SYSTEM_PROCEDURE_KIND, "code": procedure.kind, "display": procedure.get_kind_display()}
            ],
            "text": procedure.kind,
        },
        "subject": _ref("Patient", procedure.patient_id),
        "performedDateTime": procedure.performed_on.isoformat(),
        "bodySite": [
            {
                "coding": [{"system": SYSTEM_VERTEBRA, "code": level.level, "display": f"{level.level} vertebra"}],
                "text": level.level,
            }
            for level in procedure.levels.all()
        ],
        "note": [{"text": procedure.notes}] if procedure.notes else [],
    }
    return validated(FhirProcedure, _drop_empty(data))


PROCEDURE_PATHS = {
    "kind": "Procedure.code",
    "performed_on": "Procedure.performedDateTime",
    "fracture_diagnosed_on": f"Procedure.extension('{EXT_FRACTURE_DIAGNOSED}')",
    "baseline_pain": f"Procedure.extension('{EXT_BASELINE_PAIN}')",
    "levels": "Procedure.bodySite",
    "notes": "Procedure.note",
    "patient": "Procedure.subject",
}


def _procedure_kind(code: dict | None) -> str:
    coded = _codes(code, SYSTEM_PROCEDURE_KIND)
    if coded:
        if coded[0] not in ProcedureKind.values:
            raise FHIRError(f"Unknown procedure kind {coded[0]!r}.", path="Procedure.code")
        return coded[0]
    words = " ".join(
        [(code or {}).get("text", "")] + [c.get("display", "") for c in (code or {}).get("coding", [])]
    ).lower()
    found = [kind for kind in ProcedureKind.values if kind in words]
    if len(found) != 1:
        raise FHIRError(
            f"Procedure.code needs a coding with system {SYSTEM_PROCEDURE_KIND} (kyphoplasty or vertebroplasty), "
            "or text naming exactly one of them.",
            path="Procedure.code",
        )
    return found[0]


class ProcedureTypeView(FHIRView):
    field_paths = PROCEDURE_PATHS

    def get(self, request):
        patient_id = self.search_patient_id()
        rows = (
            Procedure.objects.filter(patient__clinic_id__in=self.clinic_ids(), patient_id=patient_id)
            .prefetch_related("levels")
            .order_by("performed_on", "id")
        )
        return self.bundle([procedure_resource(procedure) for procedure in rows])

    @idempotent
    def post(self, request):
        data = parse_resource(request, FhirProcedure, "Procedure")
        patient = self.body_patient(data.get("subject"), "Procedure.subject")
        if data.get("status") != "completed":
            raise FHIRError("Only a completed procedure can be recorded (status 'completed').", path="Procedure.status")
        performed = data.get("performedDateTime") or (data.get("performedPeriod") or {}).get("start")
        levels = []
        for index, site in enumerate(data.get("bodySite", [])):
            codes = _codes(site, SYSTEM_VERTEBRA)
            if len(codes) != 1:
                raise FHIRError(
                    f"Each bodySite needs one coding with system {SYSTEM_VERTEBRA} (T1–L5).",
                    path=f"Procedure.bodySite[{index}]",
                )
            levels.append({"level": codes[0]})
        fields = {
            "kind": _procedure_kind(data.get("code")),
            "performed_on": _date_of(performed, "Procedure.performedDateTime"),
            "notes": "\n".join(note.get("text", "") for note in data.get("note", [])).strip(),
        }
        fracture = _extension(data, EXT_FRACTURE_DIAGNOSED)
        if fracture is not None:
            fields["fracture_diagnosed_on"] = _date_of(
                fracture.get("valueDate"), PROCEDURE_PATHS["fracture_diagnosed_on"]
            )
        baseline = _extension(data, EXT_BASELINE_PAIN)
        if baseline is not None:
            if not isinstance(baseline.get("valueInteger"), int):
                raise FHIRError(
                    "The baseline pain extension needs valueInteger 0–10.", path=PROCEDURE_PATHS["baseline_pain"]
                )
            fields["baseline_pain"] = baseline["valueInteger"]
        procedure = services.record_procedure(patient=patient, levels=levels, **fields)
        return self.created(procedure_resource(procedure), f"Procedure/{procedure.pk}")


class ProcedureInstanceView(FHIRView):
    def get(self, request, pk):
        procedure = (
            Procedure.objects.filter(patient__clinic_id__in=self.clinic_ids(), pk=_int_id(pk))
            .prefetch_related("levels")
            .first()
        )
        if procedure is None:
            raise FHIRError(f"Procedure/{pk} is not known.", status_code=404)
        return Response(procedure_resource(procedure))


# --- Questionnaire and QuestionnaireResponse ----------------------------------------------------

ANSWER_DISPLAY = {"yes": "Yes", "no": "No", "unsure": "Not sure"}


def _label(name: str) -> str:
    return str(CheckInForm.base_fields[name].label)


def _pain_item(name: str, *, required: bool, coded: bool) -> dict:
    item = {
        "extension": [{"url": EXT_MIN_VALUE, "valueInteger": 0}, {"url": EXT_MAX_VALUE, "valueInteger": 10}],
        "linkId": name,
        "text": _label(name),
        "type": "integer",
        "required": required,
    }
    if coded:
        item["code"] = [PAIN_LOINC]
    return item


def questionnaire_resource(rules: Rules) -> dict:
    """The check-in of spec §4 as one flat Questionnaire, from the rules of protocol `rules.version`."""
    items = [
        _pain_item("pain_now", required=True, coded=True),
        _pain_item("pain_average_24h", required=False, coded=False),
    ]
    for flag in rules.red_flags:
        items.append(
            {
                "linkId": flag.id,
                "code": [{"system": SYSTEM_RULE, "code": flag.id}],
                "text": flag.question,
                "type": "boolean",
                "required": True,
            }
        )
    for opinion in rules.second_opinion:
        items.append(
            {
                "linkId": opinion.id,
                "code": [{"system": SYSTEM_RULE, "code": opinion.id}],
                "text": opinion.question,
                "type": "choice",
                "answerOption": [
                    {"valueCoding": {"system": SYSTEM_ANSWER, "code": answer, "display": ANSWER_DISPLAY[answer]}}
                    for answer in SO_ANSWERS
                ],
            }
        )
    items.append(
        {
            "linkId": "painkillers",
            "text": _label("painkillers"),
            "type": "choice",
            "answerOption": [
                {"valueCoding": {"system": SYSTEM_PAINKILLERS, "code": value, "display": str(label)}}
                for value, label in PainkillerUse.choices
            ],
        }
    )
    for name in REPORT_BOOLEANS:
        items.append({"linkId": name, "text": _label(name), "type": "boolean"})
    items.append({"linkId": "other_symptoms", "text": _label("other_symptoms"), "type": "text"})
    data = {
        "resourceType": "Questionnaire",
        "id": QUESTIONNAIRE_ID,
        "url": QUESTIONNAIRE_URL,
        "version": rules.version,
        "name": "KyphofollowCheckin",
        "title": "Symptom check-in after kyphoplasty or vertebroplasty",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "kyphofollow",
        "description": "Pain (NRS 0–10), red-flag questions RF-01…RF-10 and second-opinion questions (spec §1, §4). "
        "Answers are evaluated by the same rules as the patient's check-in form.",
        "item": items,
    }
    return validated(Questionnaire, data)


class QuestionnaireInstanceView(FHIRView):
    def get(self, request, pk):
        if pk != QUESTIONNAIRE_ID:
            raise FHIRError(f"Questionnaire/{pk} is not known; the check-in is {QUESTIONNAIRE_ID}.", status_code=404)
        clinics = Clinic.objects.filter(id__in=self.clinic_ids())
        slug = request.query_params.get("clinic")
        clinic = clinics.filter(slug=slug).first() if slug else clinics.first()
        if clinic is None:
            raise FHIRError("No such clinic for this caller.", status_code=404)
        return Response(questionnaire_resource(get_rules(clinic.protocol_version)))


def report_resource(report: SymptomReport) -> dict:
    rules = get_rules(report.protocol_version)
    items = [{"linkId": "pain_now", "answer": [{"valueInteger": report.pain_now}]}]
    if report.pain_average_24h is not None:
        items.append({"linkId": "pain_average_24h", "answer": [{"valueInteger": report.pain_average_24h}]})
    for flag in rules.red_flags:
        items.append(
            {"linkId": flag.id, "text": flag.question, "answer": [{"valueBoolean": flag.id in report.red_flags}]}
        )
    for opinion in rules.second_opinion:
        answer = report.second_opinion.get(opinion.id)
        if answer:
            items.append(
                {
                    "linkId": opinion.id,
                    "text": opinion.question,
                    "answer": [
                        {"valueCoding": {"system": SYSTEM_ANSWER, "code": answer, "display": ANSWER_DISPLAY[answer]}}
                    ],
                }
            )
    if report.painkillers:
        items.append(
            {
                "linkId": "painkillers",
                "answer": [
                    {
                        "valueCoding": {
                            "system": SYSTEM_PAINKILLERS,
                            "code": report.painkillers,
                            "display": str(report.get_painkillers_display()),
                        }
                    }
                ],
            }
        )
    for name in REPORT_BOOLEANS:
        value = getattr(report, name)
        if value is not None:
            items.append({"linkId": name, "answer": [{"valueBoolean": value}]})
    if report.other_symptoms:
        items.append({"linkId": "other_symptoms", "answer": [{"valueString": report.other_symptoms}]})
    findings = [
        {
            "url": EXT_FINDING,
            "extension": [
                {"url": "code", "valueCoding": {"system": SYSTEM_RULE, "code": finding["code"]}},
                {"url": "tier", "valueCode": finding["tier"]},
                {"url": "kind", "valueCode": finding["kind"]},
                {"url": "action", "valueString": finding["action"]},
                {"url": "source", "valueString": finding["source"]},
            ],
        }
        for finding in report.findings
    ]
    data = {
        "resourceType": "QuestionnaireResponse",
        "id": str(report.pk),
        "meta": _meta(report),
        "extension": findings,
        "questionnaire": f"{QUESTIONNAIRE_URL}|{report.protocol_version}",
        "status": "completed",
        "subject": _ref("Patient", report.patient_id),
        "partOf": [_ref("Procedure", report.procedure_id)],
        "authored": report.reported_at.isoformat(),
        "item": items,
    }
    return validated(QuestionnaireResponse, _drop_empty(data))


def findings_of(resource: dict) -> list[dict]:
    """The findings extension of a QuestionnaireResponse as plain dicts (code, tier, kind, action, source)."""
    found = []
    for ext in resource.get("extension", []):
        if ext.get("url") != EXT_FINDING:
            continue
        parts = {part["url"]: part for part in ext.get("extension", [])}
        found.append(
            {
                "code": parts["code"]["valueCoding"]["code"],
                "tier": parts["tier"]["valueCode"],
                "kind": parts["kind"]["valueCode"],
                "action": parts["action"]["valueString"],
                "source": parts["source"]["valueString"],
            }
        )
    return found


def _flat_items(items: list[dict], prefix: str = "QuestionnaireResponse.item") -> list[tuple[str, dict]]:
    flat = []
    for index, item in enumerate(items):
        path = f"{prefix}[{index}]"
        flat.append((path, item))
        flat.extend(_flat_items(item.get("item", []), f"{path}.item"))
        for a_index, answer in enumerate(item.get("answer", [])):
            flat.extend(_flat_items(answer.get("item", []), f"{path}.answer[{a_index}].item"))
    return flat


def _choice(answer: dict, allowed: tuple[str, ...] | list[str], path: str) -> str:
    if "valueCoding" in answer:
        value = answer["valueCoding"].get("code")
    elif "valueString" in answer:
        value = answer["valueString"]
    elif "valueBoolean" in answer and set(allowed) >= {"yes", "no"}:
        value = "yes" if answer["valueBoolean"] else "no"
    else:
        value = None
    if value not in allowed:
        raise FHIRError(f"Answer with valueCoding code one of: {', '.join(allowed)}.", path=path)
    return value


def report_arguments(data: dict, rules: Rules) -> dict:
    """submit_report's keyword arguments from a validated QuestionnaireResponse. An unknown linkId is refused,
    never skipped: a mistyped red-flag id must not go unread."""
    red_flags = {flag.id for flag in rules.red_flags}
    opinions = {opinion.id for opinion in rules.second_opinion}
    known = {"pain_now", "pain_average_24h", "painkillers", "other_symptoms", *REPORT_BOOLEANS, *red_flags, *opinions}
    arguments: dict[str, Any] = {"red_flags": [], "second_opinion": {}}
    seen: set[str] = set()
    for path, item in _flat_items(data.get("item", [])):
        link = item.get("linkId")
        answers = item.get("answer", [])
        if not answers and item.get("item"):
            continue  # a group
        if link not in known:
            raise FHIRError(
                f"Unknown linkId {link!r}; the check-in ({QUESTIONNAIRE_URL}|{rules.version}) has "
                f"{', '.join(sorted(known))}.",
                path=f"{path}.linkId",
            )
        if link in seen:
            raise FHIRError(f"linkId {link!r} is answered twice.", path=f"{path}.linkId")
        seen.add(link)
        if not answers:
            continue
        if len(answers) > 1:
            raise FHIRError(f"{link} takes one answer.", path=f"{path}.answer")
        answer, answer_path = answers[0], f"{path}.answer[0]"
        if link in {"pain_now", "pain_average_24h"}:
            if not isinstance(answer.get("valueInteger"), int):
                raise FHIRError(f"{link} needs valueInteger 0–10.", path=answer_path)
            arguments[link] = answer["valueInteger"]
        elif link in red_flags or link in REPORT_BOOLEANS:
            if not isinstance(answer.get("valueBoolean"), bool):
                raise FHIRError(f"{link} needs valueBoolean.", path=answer_path)
            if link in red_flags:
                if answer["valueBoolean"]:
                    arguments["red_flags"].append(link)
            else:
                arguments[link] = answer["valueBoolean"]
        elif link in opinions:
            arguments["second_opinion"][link] = _choice(answer, SO_ANSWERS, answer_path)
        elif link == "painkillers":
            arguments["painkillers"] = _choice(answer, PainkillerUse.values, answer_path)
        else:
            if not isinstance(answer.get("valueString"), str):
                raise FHIRError(f"{link} needs valueString.", path=answer_path)
            arguments["other_symptoms"] = answer["valueString"]
    arguments.setdefault("pain_now", None)
    return arguments


REPORT_PATHS = {
    "pain_now": "QuestionnaireResponse.item.where(linkId='pain_now')",
    "pain_average_24h": "QuestionnaireResponse.item.where(linkId='pain_average_24h')",
    "red_flags": "QuestionnaireResponse.item",
    "second_opinion": "QuestionnaireResponse.item",
    "reported_at": "QuestionnaireResponse.authored",
    "patient": "QuestionnaireResponse.subject",
    "procedure": "QuestionnaireResponse.partOf",
    "other_symptoms": "QuestionnaireResponse.item.where(linkId='other_symptoms')",
}


class QuestionnaireResponseTypeView(FHIRView):
    field_paths = REPORT_PATHS

    def get(self, request):
        patient_id = self.search_patient_id()
        rows = SymptomReport.objects.filter(patient__clinic_id__in=self.clinic_ids(), patient_id=patient_id).order_by(
            "reported_at", "id"
        )
        return self.bundle([report_resource(report) for report in rows])

    @idempotent
    def post(self, request):
        data = parse_resource(request, QuestionnaireResponse, "QuestionnaireResponse")
        patient = self.body_patient(data.get("subject"), "QuestionnaireResponse.subject")
        if data.get("status") not in {"completed", "amended"}:
            raise FHIRError(
                "Only a completed response is evaluated (status 'completed').", path="QuestionnaireResponse.status"
            )
        canonical = data.get("questionnaire")
        if canonical and canonical.split("|", 1)[0] != QUESTIONNAIRE_URL:
            raise FHIRError(f"questionnaire must be {QUESTIONNAIRE_URL}.", path="QuestionnaireResponse.questionnaire")
        procedure = self._procedure(data, patient)
        rules = get_rules(procedure.protocol_version or patient.clinic.protocol_version)
        arguments = report_arguments(data, rules)
        report = alerting.submit_report(
            procedure=procedure,
            source="fhir",
            entered_by=self.actor(),
            reported_at=_instant_of(data.get("authored"), "QuestionnaireResponse.authored"),
            **arguments,
        )
        return self.created(report_resource(report), f"QuestionnaireResponse/{report.pk}")

    def _procedure(self, data: dict, patient: Patient) -> Procedure:
        parts = [ref for ref in data.get("partOf", []) if "Procedure/" in (ref.get("reference") or "")]
        if parts:
            pk = _reference_id(parts[0], "Procedure", "QuestionnaireResponse.partOf")
            procedure = patient.procedures.filter(pk=pk).first()
            if procedure is None:
                raise FHIRError(
                    f"Procedure/{pk} is not a procedure of this patient.", path="QuestionnaireResponse.partOf"
                )
            return procedure
        procedure = patient.procedures.order_by("-performed_on", "-id").first()
        if procedure is None:
            raise FHIRError("The patient has no procedure recorded.", path="QuestionnaireResponse.subject")
        return procedure


class QuestionnaireResponseInstanceView(FHIRView):
    def get(self, request, pk):
        report = SymptomReport.objects.filter(patient__clinic_id__in=self.clinic_ids(), pk=_int_id(pk)).first()
        if report is None:
            raise FHIRError(f"QuestionnaireResponse/{pk} is not known.", status_code=404)
        return Response(report_resource(report))


# --- Task (checkpoints) -------------------------------------------------------------------------


def _output(name: str, value_type: str, value: Any) -> dict:
    return {"type": {"coding": [{"system": SYSTEM_CHECKPOINT_OUTPUT, "code": name}], "text": name}, value_type: value}


def task_resource(checkpoint: Checkpoint) -> dict:
    outputs = []
    if checkpoint.pain_score is not None:
        outputs.append(_output("pain_score", "valueInteger", checkpoint.pain_score))
    if checkpoint.dxa_t_score is not None:
        outputs.append(_output("dxa_t_score", "valueDecimal", float(checkpoint.dxa_t_score)))
    if checkpoint.dxa_date:
        outputs.append(_output("dxa_date", "valueDate", checkpoint.dxa_date.isoformat()))
    if checkpoint.medication_started is not None:
        outputs.append(_output("medication_started", "valueBoolean", checkpoint.medication_started))
    if checkpoint.medication_drug:
        outputs.append(_output("medication_drug", "valueString", checkpoint.medication_drug))
    if checkpoint.medication_started_on:
        outputs.append(_output("medication_started_on", "valueDate", checkpoint.medication_started_on.isoformat()))
    if checkpoint.medication_not_started_reason:
        outputs.append(
            _output("medication_not_started_reason", "valueString", checkpoint.medication_not_started_reason)
        )
    suffix = f" #{checkpoint.sequence}" if checkpoint.sequence > 1 else ""
    data = {
        "resourceType": "Task",
        "id": str(checkpoint.pk),
        "meta": _meta(checkpoint),
        "extension": [{"url": EXT_TARGET_DATE, "valueDate": checkpoint.target_date.isoformat()}],
        "status": TASK_STATUS[checkpoint.state],
        "businessStatus": {"text": checkpoint.state},
        "intent": "plan",
        "priority": "asap" if checkpoint.priority else "routine",
        "code": {
            "coding": [{"system": SYSTEM_CHECKPOINT, "code": checkpoint.code, "display": checkpoint.title}],
            "text": checkpoint.title,
        },
        "description": f"{checkpoint.code}{suffix}: {checkpoint.title} (source: {checkpoint.source})",
        "focus": _ref("Procedure", checkpoint.procedure_id),
        "for": _ref("Patient", checkpoint.procedure.patient_id),
        "executionPeriod": {"end": _iso(checkpoint.completed_at)} if checkpoint.completed_at else None,
        "authoredOn": _iso(checkpoint.created_at),
        "lastModified": _iso(checkpoint.updated_at),
        "performerType": [
            {
                "coding": [
                    {
                        "system": SYSTEM_AUDIENCE,
                        "code": checkpoint.audience,
                        "display": str(checkpoint.get_audience_display()),
                    }
                ]
            }
        ],
        "note": [{"text": checkpoint.outcome_notes}] if checkpoint.outcome_notes else [],
        "restriction": {
            "period": {"start": checkpoint.window_start.isoformat(), "end": checkpoint.window_end.isoformat()}
        },
        "output": outputs,
    }
    return validated(Task, _drop_empty(data))


def _checkpoints(clinic_ids: list[int]):
    return Checkpoint.objects.filter(procedure__patient__clinic_id__in=clinic_ids).select_related("procedure")


class TaskTypeView(FHIRView):
    def get(self, request):
        patient_id = self.search_patient_id()
        rows = _checkpoints(self.clinic_ids()).filter(procedure__patient_id=patient_id)
        codes = [code for value in request.query_params.getlist("code") for code in value.split(",")]
        if codes:
            rows = rows.filter(code__in=[code.split("|")[-1] for code in codes])
        statuses = [s for value in request.query_params.getlist("status") for s in value.split(",")]
        if statuses:
            rows = rows.filter(state__in=[state for state, fhir in TASK_STATUS.items() if fhir in statuses])
        rows = rows.order_by("target_date", "code", "sequence", "id")
        return self.bundle([task_resource(checkpoint) for checkpoint in rows])


class TaskInstanceView(FHIRView):
    def get(self, request, pk):
        checkpoint = _checkpoints(self.clinic_ids()).filter(pk=_int_id(pk)).first()
        if checkpoint is None:
            raise FHIRError(f"Task/{pk} is not known.", status_code=404)
        return Response(task_resource(checkpoint))


# --- Flag (alerts) ------------------------------------------------------------------------------


def flag_resource(alert: Alert) -> dict:
    data = {
        "resourceType": "Flag",
        "id": str(alert.pk),
        "meta": _meta(alert),
        "extension": [{"url": EXT_ALERT_STATE, "valueCode": alert.state}],
        "status": "active" if alert.state in LIVE_ALERT_STATES else "inactive",
        "category": [
            {"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]},
            {"coding": [{"system": SYSTEM_TIER, "code": alert.tier, "display": str(alert.get_tier_display())}]},
        ],
        "code": {"coding": [{"system": SYSTEM_RULE, "code": alert.code}], "text": f"{alert.code}: {alert.action}"},
        "subject": _ref("Patient", alert.patient_id),
        "period": _drop_empty({"start": _iso(alert.first_seen_at), "end": _iso(alert.resolved_at)}),
    }
    return validated(Flag, data)


class FlagTypeView(FHIRView):
    def get(self, request):
        patient_id = self.search_patient_id()
        rows = Alert.objects.filter(clinic_id__in=self.clinic_ids(), patient_id=patient_id)
        statuses = {s for value in request.query_params.getlist("status") for s in value.split(",")} or {"active"}
        condition = Q(pk__in=[])
        if "active" in statuses:
            condition |= Q(state__in=LIVE_ALERT_STATES)
        if "inactive" in statuses:
            condition |= Q(state=AlertState.RESOLVED)
        rows = rows.filter(condition).order_by("first_seen_at", "id")
        return self.bundle([flag_resource(alert) for alert in rows])


class FlagInstanceView(FHIRView):
    def get(self, request, pk):
        alert = Alert.objects.filter(clinic_id__in=self.clinic_ids(), pk=_int_id(pk)).first()
        if alert is None:
            raise FHIRError(f"Flag/{pk} is not known.", status_code=404)
        return Response(flag_resource(alert))


# --- Observation (DXA) and MedicationStatement / MedicationRequest (CP-07) -----------------------


def _open_checkpoint(patient: Patient, codes: list[str]) -> Checkpoint | None:
    """The patient's open checkpoint of the first of `codes` that has one (earliest target first)."""
    for code in codes:
        checkpoint = (
            Checkpoint.objects.open()
            .filter(procedure__patient=patient, code=code)
            .select_related("procedure")
            .order_by("target_date", "id")
            .first()
        )
        if checkpoint:
            return checkpoint
    return None


def _echo(data: dict, model, *, id_: str, checkpoint: Checkpoint) -> dict:
    """The accepted resource as stored: our id, and the checkpoint (Task) its result completed."""
    echoed = {key: value for key, value in data.items() if key not in {"id", "meta"}}
    echoed["id"] = id_
    echoed["meta"] = {"lastUpdated": timezone.now().isoformat()}
    echoed["extension"] = [
        *echoed.get("extension", []),
        {"url": EXT_COMPLETED_CHECKPOINT, "valueReference": _ref("Task", checkpoint.pk, checkpoint.code)},
    ]
    return validated(model, echoed)


OBSERVATION_PATHS = {
    "dxa_t_score": "Observation.valueQuantity.value",
    "dxa_date": "Observation.effectiveDateTime",
    "state": "Observation.subject",
}


class ObservationTypeView(FHIRView):
    field_paths = OBSERVATION_PATHS

    @idempotent
    def post(self, request):
        data = parse_resource(request, Observation, "Observation")
        patient = self.body_patient(data.get("subject"), "Observation.subject")
        if data.get("status") not in {"final", "amended", "corrected"}:
            raise FHIRError(
                "Only a final result is accepted (status final, amended or corrected).", path="Observation.status"
            )
        codes = [code for code in _codes(data.get("code"), LOINC) if code in DXA_T_SCORE_CODES]
        if not codes:
            raise FHIRError(
                "Observation.code needs a LOINC DXA T-score code: "
                + "; ".join(f"{code} {name}" for code, name in DXA_T_SCORE_CODES.items())
                + ".",
                path="Observation.code",
            )
        quantity = data.get("valueQuantity") or {}
        if quantity.get("value") is None:
            raise FHIRError(
                "The T-score goes in valueQuantity.value.", code="required", path="Observation.valueQuantity"
            )
        unit = quantity.get("code") or quantity.get("unit")
        if unit and unit not in T_SCORE_UNITS:
            raise FHIRError(
                f"valueQuantity must be a T-score (unit {{T-score}}), not {unit!r}.", path="Observation.valueQuantity"
            )
        try:
            t_score = Decimal(str(quantity["value"]))
        except InvalidOperation:
            raise FHIRError("valueQuantity.value is not a number.", path="Observation.valueQuantity.value") from None
        measured_on = _date_of(data.get("effectiveDateTime"), "Observation.effectiveDateTime")
        checkpoint = _open_checkpoint(patient, ["CP-06", "CP-13"])
        if checkpoint is None:
            raise FHIRError(
                "The patient has no open CP-06 (DXA) or CP-13 (repeat DXA) checkpoint; nothing was recorded.",
                status_code=422,
            )
        services.complete_checkpoint(
            checkpoint=checkpoint,
            by=self.actor(),
            notes=f"DXA result over FHIR: LOINC {codes[0]} {DXA_T_SCORE_CODES[codes[0]]}",
            dxa_t_score=t_score,
            dxa_date=measured_on,
        )
        resource = _echo(data, Observation, id_=f"dxa-{checkpoint.pk}", checkpoint=checkpoint)
        return self.created(resource, f"Task/{checkpoint.pk}")


def _drug(data: dict, path: str) -> str:
    if data.get("medicationReference"):
        raise FHIRError("Give the drug as medicationCodeableConcept; medicationReference is not supported.", path=path)
    concept = data.get("medicationCodeableConcept") or {}
    codings = concept.get("coding", [])
    name = concept.get("text") or next((c.get("display") for c in codings if c.get("display")), None)
    name = name or next((c.get("code") for c in codings if c.get("code")), None)
    if not name:
        raise FHIRError("medicationCodeableConcept needs a text or a coding.", code="required", path=path)
    atc = [c.get("code", "") for c in codings if c.get("system") == ATC]
    words = " ".join([concept.get("text", "")] + [c.get("display", "") for c in codings]).lower()
    if not (
        any(code.startswith(OSTEOPOROSIS_ATC_PREFIXES) for code in atc)
        or any(known in words for known in OSTEOPOROSIS_DRUG_NAMES)
    ):
        raise FHIRError(
            f"{name!r} is not recognised as an osteoporosis medicine (docs/fhir.md lists the accepted codes and "
            "names); CP-07 was left open.",
            status_code=422,
            path=path,
        )
    return name.strip()


class _MedicationView(FHIRView):
    resource_type = ""
    model = None

    def complete(self, data: dict, patient: Patient, *, started: bool, drug: str, started_on, reason: str = ""):
        checkpoint = _open_checkpoint(patient, ["CP-07"])
        if checkpoint is None:
            raise FHIRError(
                "The patient has no open CP-07 (osteoporosis medication) checkpoint; nothing was recorded.",
                status_code=422,
            )
        services.complete_checkpoint(
            checkpoint=checkpoint,
            by=self.actor(),
            notes=f"{self.resource_type} over FHIR",
            medication_started=started,
            medication_drug=drug if started else "",
            medication_started_on=started_on if started else None,
            medication_not_started_reason=reason,
        )
        resource = _echo(data, self.model, id_=f"cp07-{checkpoint.pk}", checkpoint=checkpoint)
        return self.created(resource, f"Task/{checkpoint.pk}")


class MedicationStatementTypeView(_MedicationView):
    resource_type = "MedicationStatement"
    model = MedicationStatement
    field_paths = {
        "medication_drug": "MedicationStatement.medicationCodeableConcept",
        "medication_started_on": "MedicationStatement.effectiveDateTime",
        "medication_not_started_reason": "MedicationStatement.statusReason",
        "medication_started": "MedicationStatement.status",
    }

    @idempotent
    def post(self, request):
        data = parse_resource(request, MedicationStatement, "MedicationStatement")
        patient = self.body_patient(data.get("subject"), "MedicationStatement.subject")
        state = data.get("status")
        if state not in {"active", "completed", "not-taken"}:
            raise FHIRError(
                "status must be active or completed (started) or not-taken.", path="MedicationStatement.status"
            )
        drug = _drug(data, "MedicationStatement.medicationCodeableConcept")
        if state == "not-taken":
            reasons = data.get("statusReason", [])
            reason = next(
                (
                    r.get("text") or next((c.get("display") or c.get("code") for c in r.get("coding", [])), "")
                    for r in reasons
                ),
                "",
            )
            if not reason:
                raise FHIRError(
                    "A not-taken statement needs the documented reason in statusReason.",
                    code="required",
                    path="MedicationStatement.statusReason",
                )
            return self.complete(
                data, patient, started=False, drug=drug, started_on=None, reason=f"{drug}: {reason}"[:200]
            )
        effective = data.get("effectiveDateTime") or (data.get("effectivePeriod") or {}).get("start")
        started_on = _date_of(effective, "MedicationStatement.effectiveDateTime")
        return self.complete(data, patient, started=True, drug=drug, started_on=started_on)


class MedicationRequestTypeView(_MedicationView):
    resource_type = "MedicationRequest"
    model = MedicationRequest
    field_paths = {
        "medication_drug": "MedicationRequest.medicationCodeableConcept",
        "medication_started_on": "MedicationRequest.authoredOn",
    }

    @idempotent
    def post(self, request):
        data = parse_resource(request, MedicationRequest, "MedicationRequest")
        patient = self.body_patient(data.get("subject"), "MedicationRequest.subject")
        if data.get("status") not in {"active", "completed"}:
            raise FHIRError("status must be active or completed.", path="MedicationRequest.status")
        if data.get("intent") not in {"order", "original-order", "reflex-order", "filler-order", "instance-order"}:
            raise FHIRError("intent must be an order (order, original-order, …).", path="MedicationRequest.intent")
        drug = _drug(data, "MedicationRequest.medicationCodeableConcept")
        started_on = _date_of(data.get("authoredOn"), "MedicationRequest.authoredOn")
        return self.complete(data, patient, started=True, drug=drug, started_on=started_on)
