"""Who has a patient's work of one kind, and when a phone call that did not reach the patient comes
back on the worklist. Each call changes one `WorkItem` (audited with its history)."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import access
from ..models import CallOutcome, Patient, WorkItem, WorkKind

# What the person given a kind of work must be allowed in the patient's clinic.
WORK_ACTION = {
    WorkKind.ALERT: access.Action.ACT_ON_ALERTS,
    WorkKind.CHECKPOINT: access.Action.RECORD,
    WorkKind.CALL: access.Action.ACT_ON_ALERTS,
    WorkKind.REVIEW: access.Action.ACT_ON_ALERTS,
}


def _item(patient: Patient, kind: str, by) -> WorkItem:
    item, _ = WorkItem.objects.select_for_update().get_or_create(patient=patient, kind=kind)
    item._history_user = by
    return item


@transaction.atomic
def assign_work(*, patient: Patient, kind: str, to, by) -> WorkItem:
    """Gives `patient`'s work of `kind` to `to` (None: to nobody). `to` must be an active staff member
    whose role in the patient's clinic allows that work."""
    if kind not in WORK_ACTION:
        raise ValidationError({"kind": ["There is no such kind of work."]})
    if to is not None and not (to.is_active and access.can(to, WORK_ACTION[kind], patient.clinic_id)):
        raise ValidationError({"to": ["This person cannot take this work in the patient's clinic."]})
    item = _item(patient, kind, by)
    item.assigned_to = to
    item.save()
    return item


@transaction.atomic
def record_call_attempt(*, patient: Patient, by, outcome: str, note: str, retry_at: datetime | None) -> WorkItem:
    """Keeps the outcome of a call to `patient`. A call that did not reach the patient needs a time to
    try again (in the future): the call leaves the worklist until then. Reaching the patient clears it."""
    if outcome not in CallOutcome.values:
        raise ValidationError({"outcome": ["Choose how the call went."]})
    reached = outcome == CallOutcome.SPOKE
    if not reached and (retry_at is None or retry_at <= timezone.now()):
        raise ValidationError({"retry_at": ["Give a time in the future to try the call again."]})
    item = _item(patient, WorkKind.CALL, by)
    item.last_outcome, item.last_note = outcome, note
    item.retry_at = None if reached else retry_at
    item.attempts = 0 if reached else item.attempts + 1
    item.save()
    return item
