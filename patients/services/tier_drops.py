"""A clinician's decision on a re-assessment that would lower a procedure's tier (spec v0.2 §2): the
lower tier, and the cancellations of intensified follow-up it brings, apply only on confirmation."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import RiskAssessment, TierDropReview
from ..rows import transition
from .risk import assessment_values, compute_assessment, lowers, make_current, procedure_protocol, tier_change_reason
from .schedule import replan


@transaction.atomic
def confirm_tier_drop(*, review: TierDropReview, by) -> RiskAssessment | None:
    """Apply the lower tier of an open tier-drop task: the risk is computed afresh (inputs may have
    changed since the task opened), becomes the current RiskAssessment, and the schedule is re-planned
    (future intensified checkpoints cancelled, each with the reason). If the fresh result no longer
    lowers the tier, the task is withdrawn, nothing else changes and None is returned. A task already
    decided is refused (ValidationError)."""
    procedure = review.procedure
    current = procedure.risk_assessments.select_for_update().filter(is_current=True).first()
    if not transition(
        TierDropReview.objects.filter(pk=review.pk),
        TierDropReview.State.OPEN,
        TierDropReview.State.CONFIRMED,
        decided_at=timezone.now(),
        decided_by=by,
        updated_at=timezone.now(),
    ):
        raise ValidationError({"state": ["This tier change was already decided."]})
    reason = f"lower tier confirmed by a clinician: {review.reason}"
    result = compute_assessment(procedure)
    if not lowers(current, result.tier):
        TierDropReview.objects.filter(pk=review.pk).update(state=TierDropReview.State.WITHDRAWN)
        review.refresh_from_db()
        return None
    version = procedure_protocol(procedure).version
    assessment = RiskAssessment(**assessment_values(procedure.pk, result, version=version, reason=reason))
    before = current.tier
    make_current(procedure, current, assessment)
    replan(procedure=procedure, reason=tier_change_reason(before, assessment.tier, reason))
    review.refresh_from_db()
    return assessment
