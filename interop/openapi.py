"""What the OpenAPI document says beyond what drf-spectacular infers from the REST views.

- The bearer-token security scheme (registered when the app is ready).
- The error responses every operation shares, the `Idempotency-Key` header of retry-safe POSTs, and the
  one error body every 4xx/5xx answer has: the `Error` component, attached to each of them by the
  `document_errors` postprocessing hook (so no error response is left without a schema).
- OpenAPI links: how an EHR (and schemathesis' stateful tests) go from one answer to the next call.
  drf-spectacular has no per-view way to declare response links, so the `add_links` postprocessing hook
  adds them to the finished schema: from a created or fetched patient to its record, risk profile,
  procedures, check-ins and alerts; from a procedure to its checkpoints; from a report to its alerts;
  from any resource to the actions on it; and from the first row of every list to that row.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "interop.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A client token from `manage.py create_api_client`; scopes `read` and/or `write`.",
        }


ERRORS = {
    400: OpenApiResponse(
        description='Invalid input: one list of messages per field, e.g. {"birth_date": ["…"]}; '
        "`non_field_errors` for the body as a whole."
    ),
    401: OpenApiResponse(description="No token, or an invalid or revoked one."),
    403: OpenApiResponse(description="The token lacks the scope (read or write) this needs."),
    404: OpenApiResponse(description="No such object among the caller's clinics."),
    413: OpenApiResponse(description="Request body over 1 MiB."),
    415: OpenApiResponse(description="Body is not application/json."),
    429: OpenApiResponse(description="Rate limited; see Retry-After."),
    503: OpenApiResponse(description="Database unavailable; nothing was saved. Retry later."),
}


def _key_header(description: str) -> dict:
    header = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False, description=description)
    return {"parameters": [header]}


IDEMPOTENT = _key_header(
    "Retry-safe key (1–255 characters): a retry with the same key and body returns the first response and "
    "creates nothing more."
)
IDEMPOTENT_ERRORS = {**ERRORS, 422: OpenApiResponse(description="Idempotency-Key reused with a different body.")}
# An action on one object (acknowledge, resolve, complete, reschedule, cancel): retry-safe with a key, and
# refused with 409 once the object has moved past the state the action needs.
ACTION = _key_header(
    "Retry-safe key (1–255 characters): a retry with the same key, object and body returns the first response "
    "(header `Idempotent-Replayed: true`) instead of a 409."
)
ACTION_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(
        description="The object is no longer in a state that allows this (e.g. the alert is already "
        "acknowledged): `detail` says why and `current_state` is its state now. Nothing was changed."
    ),
    422: OpenApiResponse(description="Idempotency-Key reused with a different body or for another object."),
}

# The body of every error response (interop/errors.py makes them all this shape).
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer: a JSON object with `detail` (about the request as a whole) and/or, "
    "for invalid input, one list of messages per request field (nested fields: the same shape per item).",
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, for the request as a whole."},
        "current_state": {
            "type": "string",
            "description": "409 only: the state the object is in now, e.g. `acknowledged` or `completed`.",
        },
        "non_field_errors": {
            "type": "array",
            "items": {"type": "string"},
            "description": "400 only: messages about the body as a whole.",
        },
    },
    "additionalProperties": {"description": "400 only: a request field's name → the messages about it."},
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def document_errors(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: the `Error` component, as the body of every 4xx/5xx."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if str(status)[0] in "45":
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
    result["components"]["schemas"] = dict(sorted(result["components"]["schemas"].items()))
    return result


ID = "$response.body#/id"
FIRST_ROW = "$response.body#/results/0/id"

# What can be done with one resource, given the expression that yields its id.
FOLLOW_UPS = {
    "patient": {
        "GetPatient": ("v1_patients_retrieve", "path.id"),
        "UpdatePatient": ("v1_patients_partial_update", "path.id"),
        "GetPatientRisk": ("v1_patients_risk_retrieve", "path.id"),
        "ListPatientProcedures": ("v1_procedures_list", "query.patient"),
        "ListPatientCheckpoints": ("v1_checkpoints_list", "query.patient"),
        "ListPatientReports": ("v1_symptom_reports_list", "query.patient"),
        "ListPatientAlerts": ("v1_alerts_list", "query.patient"),
    },
    "procedure": {
        "GetProcedure": ("v1_procedures_retrieve", "path.id"),
        "ListProcedureCheckpoints": ("v1_checkpoints_list", "query.procedure"),
        "ListProcedureReports": ("v1_symptom_reports_list", "query.procedure"),
    },
    "checkpoint": {
        "GetCheckpoint": ("v1_checkpoints_retrieve", "path.id"),
        "CompleteCheckpoint": ("v1_checkpoints_complete_create", "path.id"),
        "RescheduleCheckpoint": ("v1_checkpoints_reschedule_create", "path.id"),
        "CancelCheckpoint": ("v1_checkpoints_cancel_create", "path.id"),
    },
    "report": {
        "GetSymptomReport": ("v1_symptom_reports_retrieve", "path.id"),
    },
    "alert": {
        "GetAlert": ("v1_alerts_retrieve", "path.id"),
        "AcknowledgeAlert": ("v1_alerts_acknowledge_create", "path.id"),
        "ResolveAlert": ("v1_alerts_resolve_create", "path.id"),
    },
}

# operationId, response status → [(resource, expression for its id)]
SOURCES = {
    ("v1_patients_create", "201"): [("patient", ID)],
    ("v1_patients_by_mrn_update", "200"): [("patient", ID)],
    ("v1_patients_by_mrn_update", "201"): [("patient", ID)],
    ("v1_patients_retrieve", "200"): [("patient", ID)],
    ("v1_patients_partial_update", "200"): [("patient", ID)],
    ("v1_patients_list", "200"): [("patient", FIRST_ROW)],
    ("v1_procedures_create", "201"): [("procedure", ID), ("patient", "$response.body#/patient")],
    ("v1_procedures_retrieve", "200"): [("procedure", ID), ("patient", "$response.body#/patient")],
    ("v1_procedures_list", "200"): [("procedure", FIRST_ROW)],
    ("v1_checkpoints_retrieve", "200"): [("checkpoint", ID), ("procedure", "$response.body#/procedure")],
    ("v1_checkpoints_complete_create", "200"): [("checkpoint", ID)],
    ("v1_checkpoints_reschedule_create", "200"): [("checkpoint", ID)],
    ("v1_checkpoints_cancel_create", "200"): [("checkpoint", ID)],
    ("v1_checkpoints_list", "200"): [("checkpoint", FIRST_ROW)],
    ("v1_symptom_reports_create", "201"): [("report", ID), ("patient", "$response.body#/patient")],
    ("v1_symptom_reports_retrieve", "200"): [("report", ID), ("procedure", "$response.body#/procedure")],
    ("v1_symptom_reports_list", "200"): [("report", FIRST_ROW)],
    ("v1_alerts_retrieve", "200"): [("alert", ID), ("patient", "$response.body#/patient")],
    ("v1_alerts_acknowledge_create", "200"): [("alert", ID)],
    ("v1_alerts_resolve_create", "200"): [("alert", ID)],
    ("v1_alerts_list", "200"): [("alert", FIRST_ROW)],
}


def links_for(resource: str, expression: str) -> dict:
    return {
        name: {"operationId": operation_id, "parameters": {parameter: expression}}
        for name, (operation_id, parameter) in FOLLOW_UPS[resource].items()
    }


def add_links(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: adds `links` to the responses listed in SOURCES."""
    operations = {}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "operationId" in operation:
                operations[operation["operationId"]] = operation
    for (operation_id, status), sources in SOURCES.items():
        response = operations.get(operation_id, {}).get("responses", {}).get(status)
        if response is None:
            continue
        links = {}
        for resource, expression in sources:  # one resource at most once per response
            links |= links_for(resource, expression)
        response["links"] = {name: link for name, link in links.items() if link["operationId"] in operations}
    return result
