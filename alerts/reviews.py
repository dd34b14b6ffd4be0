"""Clinician review tasks: findings that need a clinician's look within days rather than a page
(second-opinion answers, pain not improving)."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from patients.protocol import get_protocol
from patients.rows import transition

from .models import ReviewTask


def open_review_task(*, patient, code: str, tier: str, action: str, source: str, report=None, now=None) -> ReviewTask:
    """Open a clinician review task, or leave the patient's open one for the same code as it is."""
    now = now or timezone.now()
    existing = ReviewTask.objects.filter(patient=patient, code=code, state=ReviewTask.State.OPEN).first()
    if existing:
        return existing
    version = report.protocol_version if report is not None else patient.clinic.protocol_version
    return ReviewTask.objects.create(
        patient=patient,
        clinic=patient.clinic,
        code=code,
        tier=tier,
        action=action,
        source=source,
        report=report,
        due_at=now + get_protocol(version).review_due_after,
    )


@transaction.atomic
def complete_review_task(*, task: ReviewTask, by, note: str) -> ReviewTask:
    """Open → done, with the clinician's note."""
    if not note.strip():
        raise ValidationError({"note": ["Say what the review found or decided."]})
    changed = transition(
        ReviewTask.objects.filter(pk=task.pk),
        ReviewTask.State.OPEN,
        ReviewTask.State.DONE,
        done_at=timezone.now(),
        done_by=by,
        note=note,
    )
    if not changed:
        raise ValidationError({"state": ["This review is already done."]})
    task.refresh_from_db()
    return task
