"""FHIR Procedure: read, search by patient, and create (`record_procedure`, which plans the schedule)."""

from django.db import transaction
from fhir.resources.R4B.procedure import Procedure as FhirProcedure

from patients import services
from patients.models import Patient, Procedure, ProcedureKind

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
from .codes import (
    EXT_BASELINE_PAIN,
    EXT_FRACTURE_DIAGNOSED,
    SNOMED,
    SYSTEM_PROCEDURE_KIND,
    SYSTEM_VERTEBRA,
    VERTEBRA_CODES,
    VERTEBRA_SNOMED,
)
from .search import common_filters, existing_match, page, values
from .versions import VersionedInstanceView


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
                "coding": [
                    {"system": SYSTEM_VERTEBRA, "code": level.level, "display": f"{level.level} vertebra"},
                    VERTEBRA_SNOMED[level.level],
                ],
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
    if len(found) == 1:
        return found[0]
    accepted = f"system {SYSTEM_PROCEDURE_KIND} (kyphoplasty or vertebroplasty), or text naming exactly one of them"
    codings = [c for c in (code or {}).get("coding", []) if c.get("code")]
    if codings and not found:
        sent = ", ".join(f"{c.get('system', '')}|{c['code']}" for c in codings)
        raise FHIRError(
            f"Procedure.code {sent} is not a procedure kind known here. Accepted: {accepted}.",
            status_code=422,
            code="code-invalid",
            path="Procedure.code",
        )
    raise FHIRError(f"Procedure.code needs a coding with {accepted}.", path="Procedure.code")


def _level(site: dict, index: int) -> str:
    """The level T1–L5 a bodySite names: our vertebra code, or a SNOMED CT vertebra code of native_codes.toml.
    A coding we cannot map is a 422 naming it; codings that name different levels are a 400."""
    path = f"Procedure.bodySite[{index}]"
    codings = site.get("coding", [])
    levels = {c["code"] for c in codings if c.get("system") == SYSTEM_VERTEBRA and c.get("code")}
    levels |= {VERTEBRA_CODES[key] for c in codings if (key := (c.get("system"), c.get("code"))) in VERTEBRA_CODES}
    if len(levels) == 1:
        return levels.pop()
    if levels:
        raise FHIRError(f"The codings of one bodySite name different levels ({', '.join(sorted(levels))}).", path=path)
    if not codings:
        raise FHIRError(
            f"Each bodySite needs a coding: system {SYSTEM_VERTEBRA} (T1–L5) or a SNOMED CT vertebra.", path=path
        )
    sent = ", ".join(f"{c.get('system', '')}|{c.get('code', '')}" for c in codings)
    raise FHIRError(
        f"bodySite code {sent} is not a vertebra T1–L5 known here. Accepted systems: {SYSTEM_VERTEBRA} (T1–L5) "
        f"and SNOMED CT {SNOMED} (the vertebra and vertebral-body codes listed in docs/fhir.md).",
        status_code=422,
        code="code-invalid",
        path=path,
    )


def _same_procedures(patient: Patient, fields: dict, levels: list[dict]):
    """The patient's procedures of the same kind, date and treated levels: a repeated create."""
    same = patient.procedures.filter(kind=fields["kind"], performed_on=fields["performed_on"])
    wanted = sorted(level["level"] for level in levels)
    return same.filter(pk__in=[p.pk for p in same if sorted(p.levels.values_list("level", flat=True)) == wanted])


class ProcedureTypeView(FHIRView):
    field_paths = PROCEDURE_PATHS

    def search(self, params):
        """patient (or subject), code (the kind), date (performed, YYYY-MM-DD), _id and _lastUpdated."""
        rows = Procedure.objects.filter(patient__clinic_id__in=self.clinic_ids())
        patient_id = self.search_patient_id(params)
        if patient_id is not None:
            rows = rows.filter(patient_id=patient_id)
        kinds = [code.split("|")[-1] for code in values(params, "code")]
        if kinds:
            rows = rows.filter(kind__in=kinds)
        for value in values(params, "date"):
            rows = rows.filter(performed_on=date_of(value.removeprefix("eq"), "date"))
        return common_filters(rows, params).prefetch_related("levels").order_by("performed_on", "id")

    def get(self, request):
        return page(self, self.search(request.query_params), procedure_resource)

    @idempotent
    def post(self, request):
        data = parse_resource(request, FhirProcedure, "Procedure")
        patient = self.body_patient(data.get("subject"), "Procedure.subject")
        if data.get("status") != "completed":
            raise FHIRError("Only a completed procedure can be recorded (status 'completed').", path="Procedure.status")
        performed = data.get("performedDateTime") or (data.get("performedPeriod") or {}).get("start")
        levels = [{"level": _level(site, index)} for index, site in enumerate(data.get("bodySite", []))]
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
        with transaction.atomic():
            Patient.objects.select_for_update().filter(pk=patient.pk).first()  # one create per patient at a time
            existing = existing_match(request, self.search, lambda: _same_procedures(patient, fields, levels))
            if existing is not None:
                return self.matched(procedure_resource(existing))
            procedure = services.record_procedure(patient=patient, levels=levels, **fields)
        return self.created(procedure_resource(procedure))


class ProcedureInstanceView(VersionedInstanceView):
    resource_type = "Procedure"

    def row(self, pk: str) -> Procedure:
        procedure = (
            Procedure.objects.filter(patient__clinic_id__in=self.clinic_ids(), pk=int_id(pk))
            .prefetch_related("levels")
            .first()
        )
        if procedure is None:
            raise FHIRError(f"Procedure/{pk} is not known.", status_code=404)
        return procedure

    def render(self, row: Procedure) -> dict:
        return procedure_resource(row)
