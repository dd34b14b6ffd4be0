"""Clinician review tasks: findings that need a clinician's look within days rather than a page
(second-opinion answers, pain not improving)."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from patients.rows import transition

from .models import ReviewTask
from .promises import review_due_at
from .rules import get_rules


def open_review_task(
    *,
    patient,
    code: str,
    tier: str,
    action: str,
    source: str,
    report=None,
    now=None,
    detail: str = "",
    entered_by=None,
) -> ReviewTask:
    """Open a clinician review task, due within the protocol's ROUTINE working days on the clinic's
    working time (the moment the patient is promised), or leave the patient's open one for the same
    code as it is."""
    now = now or timezone.now()
    existing = ReviewTask.objects.filter(patient=patient, code=code, state=ReviewTask.State.OPEN).first()
    if existing:
        if detail.strip():  # more words for the same open review are added to it, never dropped
            existing.detail = f"{existing.detail}\n\n{detail}".strip()
            existing.save(update_fields=["detail"])
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
        detail=detail,
        entered_by=entered_by,
        due_at=review_due_at(patient.clinic, get_rules(version), now=now),
    )


@transaction.atomic
def record_clinician_finding(*, patient, code: str, by, note: str = "", now=None) -> list[ReviewTask]:
    """A clinician enters SO-3 or a revision consideration (spec §1; never scored from patient answers):
    opens its review task, and the items its protocol entry `opens` with it (a revision plan opens the
    bone-health re-assessment it requires). Returns the tasks, the entered one first."""
    rules = get_rules(patient.clinic.protocol_version)
    item = rules.clinician_finding(code)
    if item is None:
        known = ", ".join(entry.id for entry in rules.clinician_findings)
        raise ValidationError({"code": [f"Unknown clinician finding {code!r}; known: {known}."]})
    tasks = []
    for entry in (item, *(rules.clinician_finding(other) for other in item.opens)):
        why = note if entry is item else f"Opened with {item.id}: {item.label}."
        tasks.append(
            open_review_task(
                patient=patient,
                code=entry.id,
                tier=entry.tier,
                action=entry.action,
                source=entry.source,
                now=now,
                detail=why,
                entered_by=by,
            )
        )
    return tasks


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
