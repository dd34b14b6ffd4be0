"""Symptom check-ins: the invitation e-mails with their single-use links, re-sent until the protocol's
number of invitations ([checkin] invitations) is reached, then a phone call by a coordinator; a
check-in ends answered (by a report) or called."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction

from patients.models import CallOutcome, Checkpoint, CheckpointState, PatientStatus
from patients.protocol import get_protocol
from patients.rows import claimed_batches, transition
from patients.services import (
    complete_checkpoint,
    local_moment,
    record_call_attempt,
    reminder_time,
)

from .day_messages import Item, write_items
from .message_cap import is_uncapped, sent_this_week, weekly_cap
from .models import CheckIn, CheckInState, DeliveryKind, SymptomReport
from .quiet_hours import after_quiet_hours, in_quiet_hours


def sweep_checkins(*, now: datetime, batch_size: int = 500) -> dict[str, int]:
    """Move unanswered check-ins along: first invitation, re-sends, then a phone-call task.

    Claims invited rows whose `next_action_at` has come (SKIP LOCKED); writes each invitation as an
    item of the patient's message of the day (alerts/day_messages.py: a safety one alone and at
    once) and enqueues new deliveries on commit. Quiet hours defer the invitation, and so does a day
    whose e-mail has already gone (to the next day); a patient who cannot be e-mailed goes straight
    to a phone-call task.
    """
    counts = {"invited": 0, "call_needed": 0}
    waiting = (
        CheckIn.objects.filter(state=CheckInState.INVITED, next_action_at__lte=now)
        .select_related("patient__clinic", "procedure")
        .order_by("next_action_at")
    )
    for rows in claimed_batches(waiting, batch_size):
        week = sent_this_week((row.patient_id for row in rows), now=now)
        invited = {row.pk: item for row in rows if (item := _move_along(row, now=now, counts=counts, week=week))}
        placed = write_items(list(invited.values()), now=now)
        for row in rows:
            if row.pk in invited and invited[row.pk].cause not in placed:
                _to_next_day(row, now=now)
                counts["invited"] -= 1
        CheckIn.objects.bulk_update(rows, ["state", "next_action_at", "invitations_sent", "updated_at"])
    return counts


def _to_next_day(row: CheckIn, *, now: datetime) -> None:
    """The invitation found its day's e-mail gone: it goes with the next day's, at the reminder time."""
    patient = row.patient
    local = now.astimezone(ZoneInfo(patient.time_zone))
    at = reminder_time(patient.clinic, get_protocol(row.procedure.protocol_version or patient.clinic.protocol_version))
    row.invitations_sent -= 1
    row.next_action_at = local_moment(local.date() + timedelta(days=1), at, patient.time_zone)


def _move_along(row: CheckIn, *, now: datetime, counts: dict[str, int], week) -> Item | None:
    """Decide the claimed check-in's next step (setting its fields, not saving them); returns the
    invitation to write, if one goes out now. `week`: the patients' counted messages of the last 7
    days; an invitation that would pass the weekly cap waits a day (a safety one never waits)."""
    patient, clinic = row.patient, row.patient.clinic
    local = now.astimezone(ZoneInfo(patient.time_zone))
    row.updated_at = now
    policy = get_protocol(row.procedure.protocol_version or clinic.protocol_version).checkin
    unreachable = patient.status == PatientStatus.ACTIVE and not _can_email(patient)
    if row.invitations_sent >= policy.invitations or unreachable:
        row.state, row.next_action_at = CheckInState.CALL_NEEDED, None
        counts["call_needed"] += 1
        return None
    if patient.status != PatientStatus.ACTIVE:
        row.state, row.next_action_at = CheckInState.CANCELLED, None
        return None
    if in_quiet_hours(clinic, local):
        row.next_action_at = after_quiet_hours(clinic, local, patient.time_zone)
        return None
    version = row.procedure.protocol_version or clinic.protocol_version
    uncapped = is_uncapped(version, row.reason)
    if not uncapped and week[patient.pk] >= weekly_cap(version):
        row.next_action_at = now + timedelta(days=1)
        return None
    week[patient.pk] += 0 if uncapped else 1
    row.invitations_sent += 1
    wait = policy.resend_after_days if row.invitations_sent < policy.invitations else policy.call_after_days
    row.next_action_at = now + timedelta(days=wait)
    counts["invited"] += 1
    return Item(
        cause=f"checkin:{row.pk}:{row.invitations_sent}",
        kind=DeliveryKind.CHECKIN,
        patient=patient.pk,
        day=local.date(),
        recipient=patient.email,
        clinic=clinic.pk,
        protocol_version=version,
        checkin=row.pk,
        uncapped=uncapped,
    )


def _can_email(patient) -> bool:
    return bool(patient.email_consent and patient.email)


def answer_checkin(*, checkin: CheckIn, report: SymptomReport) -> None:
    """Invited or call needed → answered by `report` (once: a second answer is refused), and the
    check-in's checkpoint, if still open, completed with the report's pain score."""
    answered = transition(
        CheckIn.objects.filter(pk=checkin.pk),
        [CheckInState.INVITED, CheckInState.CALL_NEEDED],
        CheckInState.ANSWERED,
        answered_at=report.created_at,
        next_action_at=None,
    )
    if not answered:
        raise ValidationError({"checkin": ["This check-in has already been answered."]})
    if checkin.checkpoint_id:
        checkpoint = Checkpoint.objects.get(pk=checkin.checkpoint_id)
        if checkpoint.state in (CheckpointState.SCHEDULED, CheckpointState.DUE):
            complete_checkpoint(
                checkpoint=checkpoint, notes=f"check-in report #{report.pk}", pain_score=report.pain_now
            )


@transaction.atomic
def log_checkin_call(*, checkin: CheckIn, by, note: str) -> CheckIn:
    """Call needed → called: the coordinator's phone call for a check-in that needed one."""
    if not note.strip():
        raise ValidationError({"note": ["Say what was discussed."]})
    changed = transition(
        CheckIn.objects.filter(pk=checkin.pk),
        CheckInState.CALL_NEEDED,
        CheckInState.CALLED,
        call_logged_by=by,
        call_note=note,
    )
    if not changed:
        raise ValidationError({"state": ["This check-in does not need a call."]})
    checkin.refresh_from_db()
    return checkin


@transaction.atomic
def log_call_outcome(*, patient, by, outcome: str, note: str, retry_at: datetime | None = None) -> int:
    """One call to `patient` for every check-in of theirs that needs a call (one worklist row).
    Spoke to the patient: each of those check-ins is called (the note says what was discussed); no
    answer or a voicemail: they stay open and the row comes back at `retry_at`. Returns how many
    check-ins were closed."""
    reached = outcome == CallOutcome.SPOKE
    if reached and not note.strip():
        raise ValidationError({"note": ["Say what was discussed."]})
    record_call_attempt(patient=patient, by=by, outcome=outcome, note=note, retry_at=retry_at)
    if not reached:
        return 0
    return transition(
        CheckIn.objects.filter(patient=patient),
        CheckInState.CALL_NEEDED,
        CheckInState.CALLED,
        call_logged_by=by,
        call_note=note,
    )
