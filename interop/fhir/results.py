"""FHIR results that complete a checkpoint: a DXA Observation (the protocol's "dxa" checkpoint, else its
"repeat_dxa" one, else none: a DXA is kept as a tier input whenever it was done) and a
MedicationStatement or MedicationRequest (its "medication" checkpoint), each through
`complete_checkpoint`. Which checkpoint plays each role is the protocol file's [[roles]]."""

from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from rest_framework.response import Response

from patients import services
from patients.models import Checkpoint, FhirResult, Patient
from patients.protocol import get_protocol

from ..idempotency import idempotent
from .base import FHIRError, FHIRView, codes_in, date_of, int_id, meta, parse_resource, ref, validated
from .codes import (
    DXA_T_SCORE_CODES,
    EXT_COMPLETED_CHECKPOINT,
    LOINC,
    MEDICATION_SYSTEMS,
    OSTEOPOROSIS_DRUG_NAMES,
    T_SCORE_UNITS,
    medication_entry,
)
from .search import common_filters, existing_match, page, values
from .versions import VersionedInstanceView


def _role_codes(patient: Patient, *roles: str) -> list[str]:
    """The checkpoint codes that play `roles` in the protocol of the patient's clinic."""
    protocol = get_protocol(patient.clinic.protocol_version)
    return [protocol.checkpoint_for_role(role) for role in roles]


def _window_start(checkpoint: Checkpoint):
    """Where the checkpoint's window starts for a result. A window the schedule starts at the procedure
    date (its floor) really starts at its anchor, the fracture diagnosis: a DXA done between the fracture
    and the procedure is that checkpoint's result."""
    procedure = checkpoint.procedure
    if checkpoint.window_start <= procedure.performed_on:
        return min(checkpoint.window_start, procedure.fracture_diagnosed_on or procedure.performed_on)
    return checkpoint.window_start


def _open_checkpoint(patient: Patient, codes: list[str], on) -> Checkpoint | None:
    """The patient's open checkpoint of the first of `codes` whose window holds the result's date `on`
    (earliest target first): a result completes only the checkpoint it belongs to, so an older result never
    closes a later checkpoint (a DXA of last week never completes the repeat scan due in a year)."""
    for code in codes:
        candidates = (
            Checkpoint.objects.open()
            .filter(procedure__patient=patient, code=code, window_end__gte=on)
            .select_related("procedure")
            .order_by("target_date", "id")
        )
        checkpoint = next((c for c in candidates if _window_start(c) <= on), None)
        if checkpoint:
            return checkpoint
    return None


def _identifiers(data: dict) -> list[str]:
    return [f"{i.get('system', '')}|{i['value']}" for i in data.get("identifier", []) if i.get("value")]


def result_resource(result: FhirResult) -> dict:
    resource = dict(result.resource)
    resource["id"] = str(result.pk)
    resource["meta"] = meta(result)
    return resource


def _store(data: dict, model, *, patient, checkpoint, code: str, on) -> FhirResult:
    """The accepted resource, stored with our id and the checkpoint (Task) its result completed, if any."""
    result = FhirResult.objects.create(
        resource_type=data["resourceType"],
        patient=patient,
        checkpoint=checkpoint,
        code=code,
        effective_on=on,
        identifiers=_identifiers(data),
        resource={},
    )
    stored = {key: value for key, value in data.items() if key not in {"id", "meta"}}
    stored["id"] = str(result.pk)
    if checkpoint is not None:
        stored["extension"] = [
            *stored.get("extension", []),
            {"url": EXT_COMPLETED_CHECKPOINT, "valueReference": ref("Task", checkpoint.pk, checkpoint.code)},
        ]
    result.resource = validated(model, stored)
    result.save(update_fields=["resource"])
    return result


class ResultTypeView(FHIRView):
    """Search (patient, code, date, identifier, _id, _lastUpdated) and create of one result type."""

    resource_type = ""

    def search(self, params):
        rows = FhirResult.objects.filter(patient__clinic_id__in=self.clinic_ids(), resource_type=self.resource_type)
        patient_id = self.search_patient_id(params)
        if patient_id is not None:
            rows = rows.filter(patient_id=patient_id)
        codes = [code.split("|")[-1] for code in values(params, "code")]
        if codes:
            rows = rows.filter(code__in=codes)
        for value in values(params, "date"):
            rows = rows.filter(effective_on=date_of(value.removeprefix("eq"), "date"))
        for value in values(params, "identifier"):
            rows = rows.filter(identifiers__contains=[value] if "|" in value else [f"|{value}"])
        return common_filters(rows, params).order_by("id")

    def get(self, request):
        return page(self, self.search(request.query_params), result_resource)

    def record(self, data: dict, patient: Patient, *, code: str, on, complete, match=None) -> Response:
        """Answer a repeated create with the stored result (200); otherwise record it with `complete()`
        (which returns the checkpoint it completed, or None, or raises a 422), store it and answer 201."""
        with transaction.atomic():
            Patient.objects.select_for_update().filter(pk=patient.pk).first()  # one create per patient at a time
            same = FhirResult.objects.filter(
                resource_type=self.resource_type, patient=patient, code=code, effective_on=on, **(match or {})
            )
            identifiers = _identifiers(data)
            if identifiers:
                same = (
                    FhirResult.objects.filter(
                        resource_type=self.resource_type, patient=patient, identifiers__contains=identifiers[:1]
                    )
                    | same
                )
            existing = existing_match(self.request, self.search, same)
            if existing is not None:
                return self.matched(result_resource(existing))
            checkpoint = complete()
            result = _store(data, self.model, patient=patient, checkpoint=checkpoint, code=code, on=on)
        return self.created(result_resource(result))


class ResultInstanceView(VersionedInstanceView):
    def row(self, pk: str) -> FhirResult:
        result = FhirResult.objects.filter(
            patient__clinic_id__in=self.clinic_ids(), resource_type=self.resource_type, pk=int_id(pk)
        ).first()
        if result is None:
            raise FHIRError(f"{self.resource_type}/{pk} is not known.", status_code=404)
        return result

    def render(self, row: FhirResult) -> dict:
        return result_resource(row)


class ObservationInstanceView(ResultInstanceView):
    resource_type = "Observation"


class MedicationStatementInstanceView(ResultInstanceView):
    resource_type = "MedicationStatement"


class MedicationRequestInstanceView(ResultInstanceView):
    resource_type = "MedicationRequest"


OBSERVATION_PATHS = {
    "dxa_t_score": "Observation.valueQuantity.value",
    "dxa_date": "Observation.effectiveDateTime",
    "state": "Observation.subject",
}


def _t_score(quantity: dict) -> Decimal:
    """The T-score of an Observation's valueQuantity, refused with the path when it is missing or not one."""
    if quantity.get("value") is None:
        raise FHIRError("The T-score goes in valueQuantity.value.", code="required", path="Observation.valueQuantity")
    unit = quantity.get("code") or quantity.get("unit")
    if unit and unit not in T_SCORE_UNITS:
        raise FHIRError(
            f"valueQuantity must be a T-score (unit {{T-score}}), not {unit!r}.", path="Observation.valueQuantity"
        )
    try:
        return Decimal(str(quantity["value"]))
    except InvalidOperation:
        raise FHIRError("valueQuantity.value is not a number.", path="Observation.valueQuantity.value") from None


def _sent(codings: list[dict]) -> str:
    return ", ".join(f"{c.get('system', '')}|{c.get('code', '')}" for c in codings)


def _dxa_codes(concept: dict | None) -> list[str]:
    """The LOINC DXA T-score codes of Observation.code: none is a 422 naming what was sent (a 400 when no
    code was sent at all)."""
    codes = [code for code in codes_in(concept, LOINC) if code in DXA_T_SCORE_CODES]
    if codes:
        return codes
    accepted = "; ".join(f"{code} {name}" for code, name in DXA_T_SCORE_CODES.items())
    codings = [c for c in (concept or {}).get("coding", []) if c.get("code")]
    if not codings:
        message = f"Observation.code needs a LOINC ({LOINC}) DXA T-score code: {accepted}."
        raise FHIRError(message, path="Observation.code")
    raise FHIRError(
        f"Observation.code {_sent(codings)} is not a DXA T-score code known here. Accepted system: LOINC {LOINC}, "
        f"codes {accepted}.",
        status_code=422,
        code="code-invalid",
        path="Observation.code",
    )


class ObservationTypeView(ResultTypeView):
    field_paths = OBSERVATION_PATHS
    resource_type = "Observation"
    model = Observation

    @idempotent
    def post(self, request):
        data = parse_resource(request, Observation, "Observation")
        patient = self.body_patient(data.get("subject"), "Observation.subject")
        if data.get("status") not in {"final", "amended", "corrected"}:
            raise FHIRError(
                "Only a final result is accepted (status final, amended or corrected).", path="Observation.status"
            )
        codes = _dxa_codes(data.get("code"))
        quantity = data.get("valueQuantity") or {}
        t_score = _t_score(quantity)
        measured_on = date_of(data.get("effectiveDateTime"), "Observation.effectiveDateTime")
        dxa, repeat_dxa = _role_codes(patient, "dxa", "repeat_dxa")

        def complete() -> Checkpoint | None:
            checkpoint = _open_checkpoint(patient, [dxa, repeat_dxa], measured_on)
            if checkpoint is None:  # a tier input all the same: kept as history, completing nothing
                services.record_dxa_result(
                    patient=patient, measured_on=measured_on, lowest_t_score=t_score, reason="DXA result over FHIR"
                )
                return None
            services.complete_checkpoint(
                checkpoint=checkpoint,
                by=self.actor(),
                notes=f"DXA result over FHIR: LOINC {codes[0]} {DXA_T_SCORE_CODES[codes[0]]}",
                dxa_t_score=t_score,
                dxa_date=measured_on,
            )
            return checkpoint

        value = {"resource__valueQuantity__value": quantity["value"]}
        return self.record(data, patient, code=codes[0], on=measured_on, complete=complete, match=value)


def _medication_concept(data: dict, path: str) -> tuple[dict, str]:
    """The drug as a CodeableConcept, and where it was found: medicationCodeableConcept, or the code of the
    contained Medication that medicationReference names ("#id"). A reference this server cannot resolve (it
    keeps no Medication resources) is a 422, and nothing is written."""
    reference = data.get("medicationReference")
    if not reference:
        return data.get("medicationCodeableConcept") or {}, f"{path}.medicationCodeableConcept"
    target = reference.get("reference") or ""
    if not target and reference.get("display"):
        return {"text": reference["display"]}, f"{path}.medicationReference"
    medication = next(
        (
            item
            for item in data.get("contained", [])
            if target.startswith("#") and item.get("resourceType") == "Medication" and item.get("id") == target[1:]
        ),
        None,
    )
    if medication is None:
        raise FHIRError(
            f"medicationReference {target!r} cannot be resolved here: this server keeps no Medication resources. "
            "Send the drug as medicationCodeableConcept, or as a contained Medication referenced by '#<its id>'.",
            status_code=422,
            code="not-found",
            path=f"{path}.medicationReference",
        )
    return medication.get("code") or {}, f"{path}.contained"


def _drug(data: dict, path: str, patient: Patient) -> str:
    """The osteoporosis medicine's name: recognised by a code of native_codes.toml (RxNorm, ATC, SNOMED CT) or
    by a name in the text or a display. Otherwise a 422 naming what was sent, and the checkpoint stays open."""
    concept, where = _medication_concept(data, path)
    codings = [c for c in concept.get("coding", []) if c.get("code")]
    known = next((entry for entry in map(medication_entry, codings) if entry), None)
    name = concept.get("text") or next((c.get("display") for c in codings if c.get("display")), None)
    name = name or (known or {}).get("display") or next((c["code"] for c in codings), None)
    if not name:
        raise FHIRError("The drug needs a text or a coding.", code="required", path=where)
    words = " ".join([concept.get("text", "")] + [c.get("display", "") for c in codings]).lower()
    if known or any(drug in words for drug in OSTEOPOROSIS_DRUG_NAMES):
        return name.strip()
    medication = _role_codes(patient, "medication")[0]
    systems = ", ".join(f"{label} ({system})" for system, label in MEDICATION_SYSTEMS.items())
    sent = f"code {_sent(codings)}" if codings else repr(name)
    raise FHIRError(
        f"{sent} is not recognised as an osteoporosis medicine; {medication} was left open. Accepted systems: "
        f"{systems}, with the codes listed in docs/fhir.md, or the drug's name in the text.",
        status_code=422,
        code="code-invalid",
        path=where,
    )


class _MedicationView(ResultTypeView):
    def complete(self, data: dict, patient: Patient, *, started: bool, drug: str, started_on, reason: str = ""):
        [medication] = _role_codes(patient, "medication")
        on = started_on or timezone.localdate()

        def complete() -> Checkpoint:
            checkpoint = _open_checkpoint(patient, [medication], on)
            if checkpoint is None:
                raise FHIRError(
                    f"The patient has no open {medication} (osteoporosis medication) checkpoint whose window "
                    f"holds {on}; nothing was recorded.",
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
            return checkpoint

        return self.record(data, patient, code=drug.lower()[:100], on=started_on, complete=complete)


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
        drug = _drug(data, "MedicationStatement", patient)
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
        started_on = date_of(effective, "MedicationStatement.effectiveDateTime")
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
        drug = _drug(data, "MedicationRequest", patient)
        started_on = date_of(data.get("authoredOn"), "MedicationRequest.authoredOn")
        return self.complete(data, patient, started=True, drug=drug, started_on=started_on)
