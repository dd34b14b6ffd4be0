"""FHIR results that complete a checkpoint: a DXA Observation (the protocol's "dxa" checkpoint, else its
"repeat_dxa" one) and a MedicationStatement or MedicationRequest (its "medication" checkpoint), each
through `complete_checkpoint`. Which checkpoint plays each role is the protocol file's [[roles]]."""

from decimal import Decimal, InvalidOperation

from django.utils import timezone
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation

from patients import services
from patients.models import Checkpoint, Patient
from patients.protocol import get_protocol

from ..idempotency import idempotent
from .base import FHIRError, FHIRView, codes_in, date_of, parse_resource, ref, validated
from .codes import (
    ATC,
    DXA_T_SCORE_CODES,
    EXT_COMPLETED_CHECKPOINT,
    LOINC,
    OSTEOPOROSIS_ATC_PREFIXES,
    OSTEOPOROSIS_DRUG_NAMES,
    T_SCORE_UNITS,
)


def _role_codes(patient: Patient, *roles: str) -> list[str]:
    """The checkpoint codes that play `roles` in the protocol of the patient's clinic."""
    protocol = get_protocol(patient.clinic.protocol_version)
    return [protocol.checkpoint_for_role(role) for role in roles]


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
        {"url": EXT_COMPLETED_CHECKPOINT, "valueReference": ref("Task", checkpoint.pk, checkpoint.code)},
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
        codes = [code for code in codes_in(data.get("code"), LOINC) if code in DXA_T_SCORE_CODES]
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
        measured_on = date_of(data.get("effectiveDateTime"), "Observation.effectiveDateTime")
        dxa, repeat_dxa = _role_codes(patient, "dxa", "repeat_dxa")
        checkpoint = _open_checkpoint(patient, [dxa, repeat_dxa])
        if checkpoint is None:
            raise FHIRError(
                f"The patient has no open {dxa} (DXA) or {repeat_dxa} (repeat DXA) checkpoint; nothing was recorded.",
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


def _drug(data: dict, path: str, patient: Patient) -> str:
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
            f"names); {_role_codes(patient, 'medication')[0]} was left open.",
            status_code=422,
            path=path,
        )
    return name.strip()


class _MedicationView(FHIRView):
    resource_type = ""
    model = None

    def complete(self, data: dict, patient: Patient, *, started: bool, drug: str, started_on, reason: str = ""):
        [medication] = _role_codes(patient, "medication")
        checkpoint = _open_checkpoint(patient, [medication])
        if checkpoint is None:
            raise FHIRError(
                f"The patient has no open {medication} (osteoporosis medication) checkpoint; nothing was recorded.",
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
        id_ = f"{checkpoint.code.lower().replace('-', '')}-{checkpoint.pk}"  # "cp07-<pk>"
        resource = _echo(data, self.model, id_=id_, checkpoint=checkpoint)
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
        drug = _drug(data, "MedicationStatement.medicationCodeableConcept", patient)
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
        drug = _drug(data, "MedicationRequest.medicationCodeableConcept", patient)
        started_on = date_of(data.get("authoredOn"), "MedicationRequest.authoredOn")
        return self.complete(data, patient, started=True, drug=drug, started_on=started_on)
