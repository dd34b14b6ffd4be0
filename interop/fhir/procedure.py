"""FHIR Procedure: read, search by patient, and create (`record_procedure`, which plans the schedule)."""

from fhir.resources.R4B.procedure import Procedure as FhirProcedure
from rest_framework.response import Response

from patients import services
from patients.models import Procedure, ProcedureKind

from ..idempotency import idempotent
from .base import (
    FHIRError,
    FHIRView,
    codes_in,
    date_of,
    drop_empty,
    find_extension,
    int_id,
    meta,
    parse_resource,
    ref,
    validated,
)
from .codes import EXT_BASELINE_PAIN, EXT_FRACTURE_DIAGNOSED, SYSTEM_PROCEDURE_KIND, SYSTEM_VERTEBRA


def procedure_resource(procedure: Procedure) -> dict:
    extensions = []
    if procedure.fracture_diagnosed_on:
        extensions.append({"url": EXT_FRACTURE_DIAGNOSED, "valueDate": procedure.fracture_diagnosed_on.isoformat()})
    if procedure.baseline_pain is not None:
        extensions.append({"url": EXT_BASELINE_PAIN, "valueInteger": procedure.baseline_pain})
    data = {
        "resourceType": "Procedure",
        "id": str(procedure.pk),
        "meta": meta(procedure),
        "extension": extensions,
        "status": "completed",
        "code": {
            "coding": [
                {"system": SYSTEM_PROCEDURE_KIND, "code": procedure.kind, "display": procedure.get_kind_display()}
            ],
            "text": procedure.kind,
        },
        "subject": ref("Patient", procedure.patient_id),
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
    return validated(FhirProcedure, drop_empty(data))


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
    coded = codes_in(code, SYSTEM_PROCEDURE_KIND)
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
            codes = codes_in(site, SYSTEM_VERTEBRA)
            if len(codes) != 1:
                raise FHIRError(
                    f"Each bodySite needs one coding with system {SYSTEM_VERTEBRA} (T1–L5).",
                    path=f"Procedure.bodySite[{index}]",
                )
            levels.append({"level": codes[0]})
        fields = {
            "kind": _procedure_kind(data.get("code")),
            "performed_on": date_of(performed, "Procedure.performedDateTime"),
            "notes": "\n".join(note.get("text", "") for note in data.get("note", [])).strip(),
        }
        fracture = find_extension(data, EXT_FRACTURE_DIAGNOSED)
        if fracture is not None:
            fields["fracture_diagnosed_on"] = date_of(
                fracture.get("valueDate"), PROCEDURE_PATHS["fracture_diagnosed_on"]
            )
        baseline = find_extension(data, EXT_BASELINE_PAIN)
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
            Procedure.objects.filter(patient__clinic_id__in=self.clinic_ids(), pk=int_id(pk))
            .prefetch_related("levels")
            .first()
        )
        if procedure is None:
            raise FHIRError(f"Procedure/{pk} is not known.", status_code=404)
        return Response(procedure_resource(procedure))
