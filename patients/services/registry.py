"""The registry: registering and changing patients, recording procedures with their treated levels.
Every front door (REST, FHIR, admin, import, demo) writes through these.

A `ValidationError` leaves nothing written: each function runs in one transaction.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from patients import audit

from ..models import Clinic, Patient, PatientStatus, Procedure, TreatedLevel
from .checkpoints import stop_follow_up
from .readings import record_dxa
from .schedule import refresh_procedure, schedule_procedure


def _keep_dxa(patient: Patient, before: tuple | None) -> None:
    """A T-score given with the patient's record (admin, REST, import) becomes a DXA result of the
    patient's history; the record then shows the most recent scan, never simply the last one typed."""
    given = (patient.bmd_lowest_t_score, patient.dxa_date)
    if given[0] is not None and given != before:
        record_dxa(patient=patient, measured_on=given[1], lowest_t_score=given[0], source=audit.current_source())


@transaction.atomic
def record_dxa_result(*, patient: Patient, measured_on, lowest_t_score, reason: str):
    """A DXA result that completes no checkpoint (none is open for its date): kept in the patient's
    history like every other, and each procedure re-assessed at once, as for any tier input (a raise
    applies, a drop waits for a clinician's confirmation). Returns the DxaResult row."""
    row = record_dxa(
        patient=patient, measured_on=measured_on, lowest_t_score=lowest_t_score, source=audit.current_source()
    )
    for procedure in patient.procedures.all():
        refresh_procedure(procedure=procedure, reason=reason)
    return row


@transaction.atomic
def register_patient(*, clinic: Clinic, **fields: Any) -> Patient:
    """Create one Patient row in `clinic`."""
    patient = Patient(clinic=clinic, **fields)
    duplicate = ValidationError({"mrn": ["A patient with this MRN is already registered in this clinic."]})
    if Patient.objects.filter(clinic=clinic, mrn=patient.mrn).exists():
        raise duplicate
    # The MRN's uniqueness is left to the database below: a row committed by a racing request since
    # the check above must give the same `mrn` error, not full_clean's own wording under "__all__".
    patient.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            patient.save()
    except IntegrityError:
        raise duplicate from None  # registered by a concurrent request a moment ago
    _keep_dxa(patient, None)
    return patient


@transaction.atomic
def update_patient(*, patient: Patient, reason: str = "patient record changed", **fields: Any) -> Patient:
    """Change the given fields of one Patient row and re-assess each of the patient's procedures;
    a patient who leaves follow-up (withdrawn, deceased) has every open checkpoint cancelled."""
    stored = Patient.objects.filter(pk=patient.pk).values("status", "bmd_lowest_t_score", "dxa_date").first() or {}
    was_active = stored.get("status") == PatientStatus.ACTIVE
    for name, value in fields.items():
        setattr(patient, name, value)
    patient.full_clean()
    patient.save()
    _keep_dxa(patient, (stored.get("bmd_lowest_t_score"), stored.get("dxa_date")))
    if was_active and patient.status != PatientStatus.ACTIVE:
        stop_follow_up(patient=patient, reason=f"patient {patient.status}")
    for procedure in patient.procedures.all():
        refresh_procedure(procedure=procedure, reason=reason)
    return patient


def _record_levels(procedure: Procedure, levels: list[Mapping[str, Any]]) -> None:
    """One TreatedLevel row per level; errors are named `levels[i].field`, a level named twice is refused."""
    if not levels:
        raise ValidationError({"levels": ["At least one treated level is required."]})
    errors: dict[str, list] = {}
    seen: set[str] = set()
    for index, level_fields in enumerate(levels):
        level = TreatedLevel(procedure=procedure, **level_fields)
        try:
            level.full_clean(exclude=["procedure"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors[f"levels[{index}].{field}"] = messages
            continue
        if level.level in seen:
            errors[f"levels[{index}].level"] = [f"{level.level} is listed twice."]
            continue
        seen.add(level.level)
        level.save()
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def record_procedure(
    *, patient: Patient, levels: Iterable[Mapping[str, Any]], schedule: bool = True, **fields: Any
) -> Procedure:
    """Create one Procedure row, a TreatedLevel row per level, its risk assessment and its schedule
    (unless `schedule=False`: the caller then plans many at once with `schedule_procedures`).

    Errors on a level are reported as `levels[i].field`; a level named twice is refused.
    """
    procedure = Procedure(patient=patient, **fields)
    procedure.full_clean()
    procedure.save()
    _record_levels(procedure, list(levels))
    if schedule:
        schedule_procedure(procedure=procedure)
    return procedure
