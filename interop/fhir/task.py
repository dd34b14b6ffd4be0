"""FHIR Task: the checkpoints of the follow-up schedule, read and searched by patient, code and status."""

from typing import Any

from fhir.resources.R4B.task import Task

from patients.models import Checkpoint

from .base import FHIRError, FHIRView, drop_empty, int_id, iso, meta, ref, validated
from .codes import EXT_TARGET_DATE, SYSTEM_AUDIENCE, SYSTEM_CHECKPOINT, SYSTEM_CHECKPOINT_OUTPUT, TASK_STATUS
from .search import common_filters, page, values
from .versions import VersionedInstanceView


def _output(name: str, value_type: str, value: Any) -> dict:
    return {"type": {"coding": [{"system": SYSTEM_CHECKPOINT_OUTPUT, "code": name}], "text": name}, value_type: value}


def _outputs(checkpoint: Checkpoint) -> list[dict]:
    """The outcome recorded when the checkpoint was completed, one output per field that holds a value."""
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
    return outputs


def _audience(checkpoint: Checkpoint) -> dict:
    display = str(checkpoint.get_audience_display())
    return {"coding": [{"system": SYSTEM_AUDIENCE, "code": checkpoint.audience, "display": display}]}


def task_resource(checkpoint: Checkpoint) -> dict:
    suffix = f" #{checkpoint.sequence}" if checkpoint.sequence > 1 else ""
    data = {
        "resourceType": "Task",
        "id": str(checkpoint.pk),
        "meta": meta(checkpoint),
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
        "focus": ref("Procedure", checkpoint.procedure_id),
        "for": ref("Patient", checkpoint.procedure.patient_id),
        "executionPeriod": {"end": iso(checkpoint.completed_at)} if checkpoint.completed_at else None,
        "authoredOn": iso(checkpoint.created_at),
        "lastModified": iso(checkpoint.updated_at),
        "performerType": [_audience(checkpoint)],
        "note": [{"text": checkpoint.outcome_notes}] if checkpoint.outcome_notes else [],
        "restriction": {
            "period": {"start": checkpoint.window_start.isoformat(), "end": checkpoint.window_end.isoformat()}
        },
        "output": _outputs(checkpoint),
    }
    return validated(Task, drop_empty(data))


def _checkpoints(clinic_ids: list[int]):
    return Checkpoint.objects.filter(procedure__patient__clinic_id__in=clinic_ids).select_related("procedure")


class TaskTypeView(FHIRView):
    def search(self, params):
        """patient (or for, subject), code, status, _id and _lastUpdated."""
        rows = _checkpoints(self.clinic_ids())
        patient_id = self.search_patient_id(params, names=("patient", "for", "subject"))
        if patient_id is not None:
            rows = rows.filter(procedure__patient_id=patient_id)
        codes = values(params, "code")
        if codes:
            rows = rows.filter(code__in=[code.split("|")[-1] for code in codes])
        statuses = values(params, "status")
        if statuses:
            rows = rows.filter(state__in=[state for state, fhir in TASK_STATUS.items() if fhir in statuses])
        return common_filters(rows, params).order_by("target_date", "code", "sequence", "id")

    def get(self, request):
        return page(self, self.search(request.query_params), task_resource)


class TaskInstanceView(VersionedInstanceView):
    resource_type = "Task"

    def row(self, pk: str) -> Checkpoint:
        checkpoint = _checkpoints(self.clinic_ids()).filter(pk=int_id(pk)).first()
        if checkpoint is None:
            raise FHIRError(f"Task/{pk} is not known.", status_code=404)
        return checkpoint

    def render(self, row: Checkpoint) -> dict:
        return task_resource(row)
