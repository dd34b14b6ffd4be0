"""The risk of one procedure (spec §2): the facts the protocol scores, the assessment computed from
them, and the RiskAssessment rows that keep every changed result.

What a changed tier does to the schedule is `schedule.reassess_and_replan`'s business: nothing here
writes a checkpoint.
"""

from datetime import date, timedelta
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from .. import protocol as protocol_rules
from ..models import CheckpointState, Procedure, RiskAssessment

INITIAL_TIER = "none"  # the "tier before" of a procedure assessed for the first time


def _any_true(values: list[bool | None]) -> bool | None:
    if any(value is True for value in values):
        return True
    if values and all(value is False for value in values):
        return False
    return None


def _no_medication_by_deadline(procedure: Procedure, *, today: date, protocol: protocol_rules.Protocol) -> bool | None:
    patient = procedure.patient
    deadline = (procedure.fracture_diagnosed_on or procedure.performed_on) + timedelta(
        days=protocol.medication_deadline_days
    )
    started = patient.osteoporosis_med_started_on
    if today <= deadline or (patient.on_osteoporosis_med and started and started <= deadline):
        return False
    if patient.on_osteoporosis_med is None:
        return None
    return True


def risk_facts(procedure: Procedure, *, today: date, protocol: protocol_rules.Protocol) -> dict[str, Any]:
    """The facts of spec §2 for one procedure, as `protocol.assess` reads them; None = not recorded."""
    patient = procedure.patient
    levels = list(procedure.levels.all())
    separated = [level.cement_distribution == "separated" if level.cement_distribution else None for level in levels]
    per_level = {
        "intravertebral_cleft": [level.intravertebral_cleft for level in levels],
        "cement_leakage": [level.cement_leakage for level in levels],
        "cement_separated": separated,
        "lowest_hu": [level.hounsfield_units for level in levels],
    }
    hu_values = [value for value in per_level["lowest_hu"] if value is not None]
    return {
        # Facts recorded for some treated levels but not all: scored, and listed as missing too.
        "partly_recorded": {name for name, values in per_level.items() if None in values},
        "intravertebral_cleft": _any_true(per_level["intravertebral_cleft"]),
        "cement_leakage": _any_true(per_level["cement_leakage"]),
        "cement_separated": _any_true(separated),
        "lowest_hu": min(hu_values) if hu_values else None,
        "tl_junction": any(level.level in protocol.tl_junction_levels for level in levels),
        "posterior_fascia_oedema": procedure.posterior_fascia_oedema,
        "facet_joint_violation": procedure.facet_joint_violation,
        "bmd_lowest_t_score": float(patient.bmd_lowest_t_score) if patient.bmd_lowest_t_score is not None else None,
        "age": patient.age_on(today),
        "no_medication_by_week_16": _no_medication_by_deadline(procedure, today=today, protocol=protocol),
    }


def _day14_pain(procedure: Procedure) -> int | None:
    code = procedure_protocol(procedure).checkpoint_for_role("day14_pain")
    checkpoint = procedure.checkpoints.filter(code=code, state=CheckpointState.COMPLETED).first()
    return checkpoint.pain_score if checkpoint else None


def procedure_protocol(procedure: Procedure) -> protocol_rules.Protocol:
    """The protocol the procedure's schedule was built from (its clinic's, until it is fixed)."""
    return protocol_rules.get_protocol(procedure.protocol_version or procedure.patient.clinic.protocol_version)


def compute_assessment(procedure: Procedure, *, today: date | None = None) -> protocol_rules.Assessment:
    rules = procedure_protocol(procedure)
    facts = risk_facts(procedure, today=today or timezone.localdate(), protocol=rules)
    return protocol_rules.assess(
        facts, rules, new_fracture=procedure.new_fracture_diagnosed_on is not None, day14_pain=_day14_pain(procedure)
    )


def assessment_values(
    procedure_id: int, result: protocol_rules.Assessment, *, version: str, reason: str
) -> dict[str, Any]:
    """The field values of a new RiskAssessment row holding `result`."""
    return {
        "procedure_id": procedure_id,
        "tier": result.tier,
        "pain_points": result.pain_points,
        "fracture_points": result.fracture_points,
        "factors": [vars(contribution) | {} for contribution in result.factors],
        "missing": list(result.missing),
        "reasons": list(result.reasons),
        "protocol_version": version,
        "change_reason": reason[:200],
    }


def tier_change_reason(before: str, after: str, reason: str) -> str:
    """The reason a re-plan caused by a tier change carries on its checkpoint events."""
    return f"tier {before} → {after}: {reason}"[:300]


class Reassessment(NamedTuple):
    assessment: RiskAssessment  # the current one after the reassessment
    tier_before: str  # the former current tier in lower case, INITIAL_TIER for a first assessment

    @property
    def tier_changed(self) -> bool:
        return self.tier_before != self.assessment.tier


def _same_result(current: RiskAssessment, new: RiskAssessment) -> bool:
    fields = ("tier", "pain_points", "fracture_points", "factors", "missing")
    return all(getattr(current, name) == getattr(new, name) for name in fields)


@transaction.atomic
def reassess(*, procedure: Procedure, reason: str) -> Reassessment:
    """Re-compute the risk of one procedure. A changed result becomes the current RiskAssessment row
    (the former one stays, no longer current); an unchanged one writes nothing."""
    current = procedure.risk_assessments.select_for_update().filter(is_current=True).first()
    version = procedure_protocol(procedure).version
    assessment = RiskAssessment(
        **assessment_values(procedure.pk, compute_assessment(procedure), version=version, reason=reason)
    )
    if current and _same_result(current, assessment):
        return Reassessment(current, current.tier)
    if current:
        current.is_current = False
        current.save(update_fields=["is_current"])
    assessment.save()
    return Reassessment(assessment, current.get_tier_display().lower() if current else INITIAL_TIER)


def current_tier(procedure: Procedure) -> str:
    assessment = procedure.risk_assessments.filter(is_current=True).first()
    return assessment.tier if assessment else "standard"
