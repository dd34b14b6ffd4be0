"""Every write to the registry. Keyword-only, atomic, validated with `full_clean()`.

A `ValidationError` leaves nothing written: each function runs in one transaction.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Clinic, Patient, Procedure, TreatedLevel


@transaction.atomic
def register_patient(*, clinic: Clinic, **fields: Any) -> Patient:
    """Create one Patient row in `clinic`."""
    patient = Patient(clinic=clinic, **fields)
    patient.full_clean()
    patient.save()
    return patient


@transaction.atomic
def update_patient(*, patient: Patient, **fields: Any) -> Patient:
    """Change the given fields of one Patient row."""
    for name, value in fields.items():
        setattr(patient, name, value)
    patient.full_clean()
    patient.save()
    return patient


@transaction.atomic
def record_procedure(*, patient: Patient, levels: Iterable[Mapping[str, Any]], **fields: Any) -> Procedure:
    """Create one Procedure row and a TreatedLevel row per level.

    Errors on a level are reported as `levels[i].field`; a level named twice is refused.
    """
    procedure = Procedure(patient=patient, **fields)
    procedure.full_clean()
    procedure.save()
    levels = list(levels)
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
    return procedure
