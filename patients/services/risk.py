"""The risk of one procedure (spec §2): the facts the protocol scores, the assessment computed from
them, and the RiskAssessment rows that keep every changed result.

What a changed tier does to the schedule is `schedule.reassess_and_replan`'s business: nothing here
writes a checkpoint.
"""

from datetime import date, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .. import protocol as protocol_rules
from ..models import CheckpointState, Procedure, RiskAssessment, TierDropReview
from ..protocol.vocabulary import TIERS

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
    if patient.on_osteoporosis_med and started is None:
        # On medication since a date not recorded: "not_recorded" adds 0 points and lists the fact
        # as missing (protocol [risk.reassessment], [DESIGN]).
        return None if protocol.reassessment.medication_without_start_date == "not_recorded" else True
    return True


def local_today(procedure: Procedure) -> date:
    """Today in the patient's time zone: the date every deadline of the patient is counted on."""
    return timezone.localdate(timezone=ZoneInfo(procedure.patient.time_zone))


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
    # HU measured at any level (usually an untreated one such as L1, spec §2) counts with the treated levels'.
    hu_values = [value for value in [*per_level["lowest_hu"], procedure.ct_hu] if value is not None]
    if procedure.ct_hu is not None:
        per_level["lowest_hu"] = [value for value in per_level["lowest_hu"] if value is not None]
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


def day14_window(rules: protocol_rules.Protocol) -> tuple[int, int]:
    """The days after the procedure whose pain is the cleft rule's "pain at day 14": the window of the
    checkpoint playing the day14_pain role (CP-03, days 12–18)."""
    rule = rules.checkpoint(rules.checkpoint_for_role("day14_pain"))
    return rule.earliest, rule.latest


def _day14_pain(procedure: Procedure) -> int | None:
    """The highest pain score in the day-14 window from any path (spec v0.2 §2): check-in, phone call,
    REST, FHIR or the day-14 checkpoint's own outcome."""
    rules = procedure_protocol(procedure)
    first, last = day14_window(rules)
    code = rules.checkpoint_for_role("day14_pain")
    scores = [
        procedure.pain_readings.filter(day__range=(first, last)).aggregate(top=Max("pain"))["top"],
        procedure.checkpoints.filter(code=code, state=CheckpointState.COMPLETED).aggregate(top=Max("pain_score"))[
            "top"
        ],
    ]
    return max((score for score in scores if score is not None), default=None)


def procedure_protocol(procedure: Procedure) -> protocol_rules.Protocol:
    """The protocol the procedure's schedule was built from (its clinic's, until it is fixed)."""
    return protocol_rules.get_protocol(procedure.protocol_version or procedure.patient.clinic.protocol_version)


def compute_assessment(procedure: Procedure, *, today: date | None = None) -> protocol_rules.Assessment:
    rules = procedure_protocol(procedure)
    facts = risk_facts(procedure, today=today or local_today(procedure), protocol=rules)
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
    held: TierDropReview | None = None  # a lower tier waiting for a clinician, if the result was one

    @property
    def tier_changed(self) -> bool:
        return self.tier_before != self.assessment.tier


def _same_result(current: RiskAssessment, new: RiskAssessment) -> bool:
    fields = ("tier", "pain_points", "fracture_points", "factors", "missing")
    return all(getattr(current, name) == getattr(new, name) for name in fields)


def lowers(current: RiskAssessment | None, tier: str) -> bool:
    return current is not None and TIERS.index(tier) < TIERS.index(current.tier)


def what_changed(current: RiskAssessment, new: RiskAssessment) -> list[str]:
    """Each difference between two assessments, in words a clinician reads on the tier-drop task."""
    before = {factor["id"]: factor for factor in current.factors}
    after = {factor["id"]: factor for factor in new.factors}
    changes = [
        f"{after[key]['label']} ({key}, {after[key]['source']}) now applies" for key in after.keys() - before.keys()
    ]
    changes += [
        f"{before[key]['label']} ({key}, {before[key]['source']}) no longer applies"
        for key in before.keys() - after.keys()
    ]
    for name in ("pain_points", "fracture_points"):
        if getattr(current, name) != getattr(new, name):
            changes.append(f"{name.replace('_', ' ')} {getattr(current, name)} → {getattr(new, name)}")
    changes += [f"{fact} no longer recorded" for fact in new.missing if fact not in current.missing]
    return sorted(changes)


def _hold_drop(procedure: Procedure, current: RiskAssessment, new: RiskAssessment, reason: str) -> TierDropReview:
    """Open (or bring up to date) the procedure's tier-drop task instead of lowering the tier."""
    proposed = {
        name: getattr(new, name) for name in ("tier", "pain_points", "fracture_points", "factors", "missing", "reasons")
    }
    values = {
        "tier_from": current.tier,
        "tier_to": new.tier,
        "changes": what_changed(current, new),
        "proposed": proposed,
        "reason": reason[:300],
    }
    review = procedure.tier_drop_reviews.select_for_update().filter(state=TierDropReview.State.OPEN).first()
    if review is None:
        return TierDropReview.objects.create(procedure=procedure, clinic_id=procedure.patient.clinic_id, **values)
    if any(getattr(review, name) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(review, name, value)
        review.save()
    return review


def withdraw_tier_drops(procedure: Procedure, *, by=None) -> int:
    """Open tier-drop tasks of a procedure whose tier is no longer to be lowered are withdrawn."""
    return procedure.tier_drop_reviews.filter(state=TierDropReview.State.OPEN).update(
        state=TierDropReview.State.WITHDRAWN, decided_at=timezone.now(), decided_by=by, updated_at=timezone.now()
    )


def make_current(procedure: Procedure, current: RiskAssessment | None, assessment: RiskAssessment) -> None:
    if current:
        current.is_current = False
        current.save(update_fields=["is_current"])
    assessment.save()


@transaction.atomic
def reassess(*, procedure: Procedure, reason: str, today: date | None = None) -> Reassessment:
    """Re-compute the risk of one procedure. A changed result becomes the current RiskAssessment row
    (the former one stays, no longer current); an unchanged one writes nothing. A result with a lower
    tier never applies by itself (spec v0.2 §2): the current row stays and a TierDropReview shows the
    old and new tier and what changed, until a clinician confirms (`tier_drops.confirm_tier_drop`).
    Any other result withdraws an open tier-drop task. `today` (the patient's local date by default)
    is the date deadlines are counted on."""
    current = procedure.risk_assessments.select_for_update().filter(is_current=True).first()
    rules = procedure_protocol(procedure)
    assessment = RiskAssessment(
        **assessment_values(
            procedure.pk, compute_assessment(procedure, today=today), version=rules.version, reason=reason
        )
    )
    if lowers(current, assessment.tier) and rules.reassessment.lower_needs_confirmation:
        return Reassessment(current, current.tier, _hold_drop(procedure, current, assessment, reason))
    withdraw_tier_drops(procedure)
    if current and _same_result(current, assessment):
        return Reassessment(current, current.tier)
    make_current(procedure, current, assessment)
    return Reassessment(assessment, current.get_tier_display().lower() if current else INITIAL_TIER)


def current_tier(procedure: Procedure) -> str:
    assessment = procedure.risk_assessments.filter(is_current=True).first()
    return assessment.tier if assessment else "standard"
