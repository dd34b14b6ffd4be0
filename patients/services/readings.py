"""Tier inputs kept as history: DXA results (spec §2: every DXA is kept, the tier reads the lowest
site T-score of the most recent one) and pain scores by day after the procedure (the cleft rule reads
those near day 14, whichever path they came by). Nothing here re-assesses: the caller does."""

from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from ..models import DxaResult, PainReading, Patient, Procedure


def _validated(row) -> None:
    try:
        row.full_clean(exclude=["patient", "procedure"])
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from None


@transaction.atomic
def record_dxa(
    *, patient: Patient, measured_on: date | None, lowest_t_score: Decimal, source: str, sites: str = ""
) -> DxaResult:
    """Keep one DXA result and make the patient's T-score and DXA date those of the most recent scan.

    A result for a date already held is another site of that scan: the row keeps the lower T-score. A
    result dated before the most recent one (late or out of order) is kept as history and changes
    nothing on the patient. Writes the DxaResult row and, when the most recent scan changed, the Patient.
    """
    row = DxaResult.objects.select_for_update().filter(patient=patient, measured_on=measured_on).first()
    score = Decimal(str(lowest_t_score))
    if row is None:
        row = DxaResult(patient=patient, measured_on=measured_on, lowest_t_score=score, sites=sites, source=source)
        _validated(row)
        row.save()
    elif score < row.lowest_t_score:
        row.lowest_t_score, row.source = score, source
        row.sites = ", ".join(part for part in (row.sites, sites) if part)[:200]
        _validated(row)
        row.save(update_fields=["lowest_t_score", "sites", "source"])
    _take_most_recent(patient)
    return row


def most_recent_dxa(patient: Patient) -> DxaResult | None:
    """The most recent scan by date; undated results count only when no dated one exists."""
    return patient.dxa_results.order_by(F("measured_on").desc(nulls_last=True), "-id").first()


def _take_most_recent(patient: Patient) -> None:
    latest = most_recent_dxa(patient)
    if latest is None:
        return
    values = {"bmd_lowest_t_score": latest.lowest_t_score, "dxa_date": latest.measured_on}
    if any(getattr(patient, name) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(patient, name, value)
        patient.save(update_fields=[*values, "updated_at"])


def record_pain(*, procedure: Procedure, day: int, pain: int, source: str) -> PainReading:
    """Keep one pain score of the procedure on `day` after it (any path: form, phone, REST, FHIR,
    a completed checkpoint)."""
    reading = PainReading(procedure=procedure, day=day, pain=pain, source=source)
    _validated(reading)
    reading.save()
    return reading
