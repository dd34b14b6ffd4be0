"""The CapabilityStatement (GET /fhir/metadata): every resource, interaction and search parameter the
facade supports."""

from django.utils import timezone
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from rest_framework import permissions
from rest_framework.response import Response

from .base import FHIRView, validated
from .codes import BASE, FHIR_VERSION


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kyphofollow")
    except PackageNotFoundError:
        return "0"


HL7 = "http://hl7.org/fhir/SearchParameter"
OURS = f"{BASE}/fhir/SearchParameter"
# Every search parameter: its type, its definition (the R4 SearchParameter it implements, or ours where
# R4 has none) and what it does here.
PARAMS = {
    "_id": ("token", f"{HL7}/Resource-id", "One or more ids, comma-separated."),
    "_lastUpdated": ("date", f"{HL7}/Resource-lastUpdated", "gt, ge, lt, le or eq; a date (UTC) or an instant."),
    "identifier": ("token", f"{HL7}/Patient-identifier", "The MRN ([system|]value)."),
    "patient": ("reference", f"{HL7}/clinical-patient", "123 or Patient/123."),
    "code": ("token", f"{HL7}/clinical-code", "[system|]code."),
    "date": ("date", f"{HL7}/clinical-date", "The date (YYYY-MM-DD) it was performed or took effect."),
    "for": ("reference", f"{OURS}/Task-for", "Task.for: the patient, 123 or Patient/123."),
    "task-status": ("token", f"{HL7}/Task-status", "requested, ready, completed, failed or cancelled."),
    "flag-status": ("token", f"{OURS}/Flag-status", "active (the default: open or acknowledged) and/or inactive."),
    "url": ("uri", f"{HL7}/Questionnaire-url", "The canonical, optionally with |version."),
    "authored": ("date", f"{HL7}/QuestionnaireResponse-authored", "The exact instant it was authored."),
    "result-identifier": ("token", f"{HL7}/clinical-identifier", "The sender's identifier ([system|]value)."),
}


def _params(*names: str) -> list[dict]:
    params = []
    for name in ("_id", "_lastUpdated", *names):
        kind, definition, documentation = PARAMS[name]
        params.append(
            {"name": name.split("-")[-1], "definition": definition, "type": kind, "documentation": documentation}
        )
    return params


def _resource(kind, interactions, params, *, history: bool = False, create: bool = False, **extra) -> dict:
    entry = {
        "type": kind,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned",
        "readHistory": history,
        "conditionalCreate": create,
        "conditionalUpdate": False,
        "searchParam": _params(*params),
        **extra,
    }
    return entry


def _resources() -> list[dict]:
    read = ["read", "vread", "search-type"]
    results = ("patient", "code", "date", "result-identifier")
    return [
        _resource(
            "Patient", [*read, "create", "update"], ["identifier"], history=True, create=True, updateCreate=False
        ),
        _resource("Procedure", [*read, "create"], ["patient", "code", "date"], history=True, create=True),
        _resource("Questionnaire", ["read", "search-type"], ["url"]),
        _resource("QuestionnaireResponse", [*read, "create"], ["patient", "authored"], create=True),
        _resource("Task", read, ["patient", "for", "code", "task-status"]),
        _resource("Flag", read, ["patient", "flag-status"]),
        _resource("Observation", [*read, "create"], results, create=True),
        _resource("MedicationStatement", [*read, "create"], results, create=True),
        _resource("MedicationRequest", [*read, "create"], results, create=True),
    ]


class MetadataView(FHIRView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def get(self, request):
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
                    "resource": _resources(),
                }
            ],
        }
        return Response(validated(CapabilityStatement, data))
