"""A checkpoint's outcome: checked, recorded on the checkpoint as it is completed, and carried into
the patient's record (DXA result, osteoporosis medication) and so into every procedure's risk and plan.
"""

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from patients import audit

from .. import protocol as protocol_rules
from ..models import Checkpoint, Patient
from .checkpoints import mark_completed, not_open
from .readings import record_dxa, record_pain
from .risk import local_today
from .schedule import refresh_procedure

# The checkpoint fields an outcome fills in; the rest of the row is the plan's.
OUTCOME_COLUMNS = (
    "pain_score",
    "dxa_t_score",
    "dxa_date",
    "medication_started",
    "medication_drug",
    "medication_started_on",
    "medication_not_started_reason",
    "outcome_notes",
)


def _outcome_errors(checkpoint: Checkpoint, outcome: dict[str, Any]) -> dict[str, list]:
    """Each outcome field against its model field, then the rules that tie fields together and
    the outcome some checkpoints cannot be completed without."""
    errors: dict[str, list] = {}
    try:
        Checkpoint(pk=checkpoint.pk, procedure=checkpoint.procedure, **outcome).clean_fields(
            exclude=[f.name for f in Checkpoint._meta.fields if f.name not in OUTCOME_COLUMNS]
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if (outcome["dxa_t_score"] is None) != (outcome["dxa_date"] is None):
        errors["dxa_date"] = ["A DXA result needs both the T-score and the date."]
    started = outcome["medication_started"]
    if started and not (outcome["medication_drug"] and outcome["medication_started_on"]):
        errors["medication_drug"] = ["A medication start needs the drug and the start date."]
    if started is False and not outcome["medication_not_started_reason"]:
        errors["medication_not_started_reason"] = ["Give the documented reason the medication was not started."]
    # Which checkpoint cannot be completed without which outcome is protocol data (`[[outcomes]]`).
    protocol = protocol_rules.get_protocol(checkpoint.protocol_version)
    errors.update(protocol.outcome_errors(checkpoint.code, outcome))
    return errors


@transaction.atomic
def complete_checkpoint(
    *,
    checkpoint: Checkpoint,
    by=None,
    notes: str = "",
    pain_score: int | None = None,
    dxa_t_score=None,
    dxa_date: date | None = None,
    medication_started: bool | None = None,
    medication_drug: str = "",
    medication_started_on: date | None = None,
    medication_not_started_reason: str = "",
) -> Checkpoint:
    """Complete one open (or missed) checkpoint with its outcome; reminders stop at once.

    A DXA result joins the patient's DXA history (the record shows the most recent scan); a pain score
    is kept as a pain reading of the procedure; a medication start updates the
    patient's osteoporosis medication (and plans the repeat DXA, CP-13). Then every procedure of the
    patient is re-assessed.
    """
    outcome = {
        "pain_score": pain_score,
        "dxa_t_score": dxa_t_score,
        "dxa_date": dxa_date,
        "medication_started": medication_started,
        "medication_drug": medication_drug,
        "medication_started_on": medication_started_on,
        "medication_not_started_reason": medication_not_started_reason,
        "outcome_notes": notes,
    }
    errors = _outcome_errors(checkpoint, outcome)
    if errors:
        raise ValidationError(errors)
    if not mark_completed(checkpoint=checkpoint, by=by, outcome=outcome):
        raise not_open(checkpoint)
    _apply_outcome(checkpoint, outcome)
    return checkpoint


def _patient_changes(patient: Patient, outcome: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if outcome["medication_started"]:
        changes.update(
            on_osteoporosis_med=True,
            osteoporosis_drug=outcome["medication_drug"],
            osteoporosis_med_started_on=outcome["medication_started_on"],
        )
    elif outcome["medication_started"] is False and patient.on_osteoporosis_med is None:
        changes.update(on_osteoporosis_med=False)
    return changes


def _apply_outcome(checkpoint: Checkpoint, outcome: dict[str, Any]) -> None:
    """The outcome's facts into the patient's record (a DXA result joins the patient's DXA history, a
    pain score the procedure's pain readings), then every procedure of the patient refreshed."""
    patient = Patient.objects.select_for_update().get(pk=checkpoint.procedure.patient_id)
    changes = _patient_changes(patient, outcome)
    for name, value in changes.items():
        setattr(patient, name, value)
    if changes:
        patient.save(update_fields=[*changes, "updated_at"])
    source = f"{checkpoint.code} ({audit.current_source()})"
    if outcome["dxa_t_score"] is not None:
        record_dxa(
            patient=patient, measured_on=outcome["dxa_date"], lowest_t_score=outcome["dxa_t_score"], source=source
        )
    if outcome["pain_score"] is not None:
        procedure = checkpoint.procedure
        day = (local_today(procedure) - procedure.performed_on).days
        record_pain(procedure=procedure, day=day, pain=outcome["pain_score"], source=source)
    for procedure in patient.procedures.all():
        refresh_procedure(procedure=procedure, reason=f"{checkpoint.code} completed")
