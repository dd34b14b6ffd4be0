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


def _resource(kind, interactions, params=(), **extra) -> dict:
    entry = {"type": kind, "interaction": [{"code": code} for code in interactions], **extra}
    if params:
        entry["searchParam"] = [{"name": name, "type": kind_} for name, kind_ in params]
    return entry


def _resources() -> list[dict]:
    return [
        _resource(
            "Patient",
            ["read", "create", "update", "search-type"],
            [("identifier", "token")],
            updateCreate=False,
        ),
        _resource("Procedure", ["read", "create", "search-type"], [("patient", "reference")]),
        _resource("Questionnaire", ["read"]),
        _resource("QuestionnaireResponse", ["read", "create", "search-type"], [("patient", "reference")]),
        _resource(
            "Task",
            ["read", "search-type"],
            [("patient", "reference"), ("code", "token"), ("status", "token")],
        ),
        _resource("Flag", ["read", "search-type"], [("patient", "reference"), ("status", "token")]),
        _resource("Observation", ["create"]),
        _resource("MedicationStatement", ["create"]),
        _resource("MedicationRequest", ["create"]),
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
