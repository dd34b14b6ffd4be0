"""Planning: a procedure's checkpoints follow the protocol's plan for its current risk tier.

A procedure is planned once when recorded (`schedule_procedure`, or `schedule_procedures` for many
at once), re-planned when its risk tier or an input of the plan changes (`reassess_and_replan`,
`refresh_procedure`, `replan`), and moved along by the state sweep as windows open and close.
The rows themselves are written through `checkpoints.py`.
"""

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import protocol as protocol_rules
from ..models import Checkpoint, CheckpointState, PatientStatus, Procedure, RiskAssessment
from ..rows import claimed_batches, copy_rows
from .checkpoints import mark_cancelled, missed_batches, move_planned, open_windows, plan_checkpoints
from .moments import planned_values, reminder_time
from .risk import (
    INITIAL_TIER,
    assessment_values,
    current_tier,
    local_today,
    procedure_protocol,
    reassess,
    risk_facts,
    tier_change_reason,
)

# What a re-plan may move on a scheduled checkpoint.
MOVABLE_FIELDS = (
    "window_start",
    "target_date",
    "window_end",
    "opens_at",
    "due_at",
    "closes_at",
    "priority",
    "next_reminder_at",
)


def schedule_facts(procedure: Procedure) -> protocol_rules.ScheduleFacts:
    patient = procedure.patient
    return protocol_rules.ScheduleFacts(
        procedure_date=procedure.performed_on,
        fracture_date=procedure.fracture_diagnosed_on,
        medication_started_on=patient.osteoporosis_med_started_on if patient.on_osteoporosis_med else None,
        last_dxa_on=patient.dxa_date,
        brace_prescribed=procedure.brace_prescribed,
    )


def _plan(procedure: Procedure, tier: str, rules: protocol_rules.Protocol) -> list[tuple[Any, dict[str, Any]]]:
    """The protocol's plan for the procedure at `tier`: each item with its checkpoint's field values."""
    zone, at = procedure.patient.time_zone, reminder_time(procedure.patient.clinic, rules)
    return [
        (item, planned_values(procedure.pk, item, zone=zone, at=at, version=rules.version))
        for item in protocol_rules.plan(schedule_facts(procedure), tier, rules)
    ]


def _move_for(row: Checkpoint, item, values: dict[str, Any]) -> tuple[Checkpoint, dict, dict] | None:
    """How a re-plan moves an existing checkpoint to its planned `values`, or None to leave it."""
    if row.state == CheckpointState.DUE and row.priority != item.priority:
        # An open FLS item gains (or loses) priority with the tier; nothing else of it moves.
        return row, {"priority": item.priority}, {"priority": item.priority}
    if row.state != CheckpointState.SCHEDULED or row.rescheduled_at or row.triggered:
        return None
    # A reminder already sent, or an imported row under review, keeps its own reminder moment.
    keeps_reminder = row.reminders_sent or row.needs_review
    changed = {
        name: values[name]
        for name in MOVABLE_FIELDS
        if values[name] != getattr(row, name) and not (name == "next_reminder_at" and keeps_reminder)
    }
    return (row, changed, {"target_date": str(item.target)}) if changed else None


@transaction.atomic
def replan(*, procedure: Procedure, reason: str, initial: bool = False) -> None:
    """Bring the procedure's scheduled checkpoints in line with the plan for its current tier.

    Completed, missed, due, triggered and staff-rescheduled checkpoints are never rewritten. Scheduled
    ones that the plan moves are updated, ones it drops are cancelled, new ones are created; each
    change is a CheckpointEvent carrying `reason`. Planning twice equals planning once.
    """
    if procedure.patient.status != PatientStatus.ACTIVE:
        return
    planned = _plan(procedure, current_tier(procedure), procedure_protocol(procedure))
    rows = list(procedure.checkpoints.select_for_update())
    existing = {(row.code, row.sequence): row for row in rows if row.state != CheckpointState.CANCELLED}
    kept_cancelled = {(row.code, row.sequence) for row in rows if row.cancelled_by_staff}
    now = timezone.now()
    new, moves = [], []
    for item, values in planned:
        row = existing.pop(item.key, None)
        if row is not None:
            moves.append(_move_for(row, item, values))
        # Staff cancellations stand; a re-plan adds nothing whose window has already closed.
        elif item.key not in kept_cancelled and (initial or values["closes_at"] > now):
            new.append((values, reason))
    move_planned(moves=[move for move in moves if move], reason=reason)
    for row in existing.values():
        if row.state == CheckpointState.SCHEDULED and not row.triggered and not row.rescheduled_at:
            mark_cancelled(checkpoint=row, reason=reason)
    plan_checkpoints(planned=new)


@transaction.atomic
def reassess_and_replan(*, procedure: Procedure, reason: str, today: date | None = None) -> RiskAssessment:
    """Re-assess the procedure's risk (`risk.reassess`, deadlines counted on `today`, the patient's
    local date by default); a changed tier re-plans its future checkpoints, the first assessment plans
    them all. A lower tier waits for a clinician (a TierDropReview) and re-plans nothing."""
    result = reassess(procedure=procedure, reason=reason, today=today)
    if result.tier_changed:
        replan(
            procedure=procedure,
            reason=tier_change_reason(result.tier_before, result.assessment.tier, reason),
            initial=result.tier_before == INITIAL_TIER,
        )
    return result.assessment


@transaction.atomic
def refresh_procedure(*, procedure: Procedure, reason: str) -> RiskAssessment:
    """After an input changed: re-assess the risk and bring the schedule in line with the plan."""
    assessment = reassess_and_replan(procedure=procedure, reason=reason)
    replan(procedure=procedure, reason=reason)
    return assessment


@transaction.atomic
def schedule_procedure(*, procedure: Procedure) -> RiskAssessment:
    """Fix the procedure's protocol version to its clinic's, assess its risk and plan its checkpoints."""
    if not procedure.protocol_version:
        procedure.protocol_version = procedure.patient.clinic.protocol_version
        procedure.save(update_fields=["protocol_version", "updated_at"])
    return reassess_and_replan(procedure=procedure, reason="procedure recorded")


def _fix_protocol_versions(procedures: list[Procedure]) -> None:
    """Give each procedure without a protocol version its clinic's: one UPDATE per version."""
    unversioned: dict[str, list[int]] = {}
    for procedure in procedures:
        if not procedure.protocol_version:
            procedure.protocol_version = procedure.patient.clinic.protocol_version
            unversioned.setdefault(procedure.protocol_version, []).append(procedure.pk)
    for version, ids in unversioned.items():
        Procedure.objects.filter(pk__in=ids).update(protocol_version=version, updated_at=timezone.now())


@transaction.atomic
def schedule_procedures(*, procedure_ids: Iterable[int]) -> int:
    """Assess and plan many newly recorded procedures at once (an import, a migration of records):
    the same assessment, plan and "planned" events as `schedule_procedure`, written with one COPY
    each of assessments, checkpoints and events. Procedures already assessed are left alone.
    Returns the number of checkpoints planned."""
    procedures = list(
        Procedure.objects.filter(pk__in=list(procedure_ids), risk_assessments__isnull=True, patient__status="active")
        .select_related("patient__clinic")
        .prefetch_related("levels")
        .select_for_update(of=("self",))
    )
    _fix_protocol_versions(procedures)
    assessments, planned = [], []
    for procedure in procedures:
        rules = protocol_rules.get_protocol(procedure.protocol_version)
        facts = risk_facts(procedure, today=local_today(procedure), protocol=rules)
        result = protocol_rules.assess(facts, rules, new_fracture=procedure.new_fracture_diagnosed_on is not None)
        assessments.append(assessment_values(procedure.pk, result, version=rules.version, reason="procedure recorded"))
        reason = tier_change_reason(INITIAL_TIER, result.tier, "procedure recorded")
        planned.extend((values, reason) for _, values in _plan(procedure, result.tier, rules))
    copy_rows(RiskAssessment, assessments)
    plan_checkpoints(planned=planned)
    return len(planned)


def sweep_checkpoint_states(*, now: datetime, batch_size: int = 1000) -> dict[str, int]:
    """Open checkpoints whose window closed become missed (and a missed medication checkpoint, CP-07,
    re-assesses the risk in the same transaction); scheduled ones whose window opened become due. Rows are claimed with
    SKIP LOCKED, so two sweeps at once never process the same row."""
    counts = {"due": 0, "missed": 0}
    for ids in missed_batches(now=now, batch_size=batch_size):
        counts["missed"] += len(ids)
        missed = Checkpoint.objects.filter(id__in=ids).select_related("procedure__patient__clinic")
        for checkpoint in missed:
            code = procedure_protocol(checkpoint.procedure).checkpoint_for_role("medication")
            if checkpoint.code == code:
                today = now.astimezone(ZoneInfo(checkpoint.procedure.patient.time_zone)).date()
                reassess_and_replan(procedure=checkpoint.procedure, reason=f"{code} missed", today=today)
    counts["due"] = open_windows(now=now, batch_size=batch_size)
    return counts


def sweep_medication_deadlines(*, now: datetime, batch_size: int = 500) -> int:
    """Score "no osteoporosis medication by week 16" on the patient's local date (spec v0.2 §2),
    whether or not anything else changes: each procedure whose deadline (F+112) has passed in its
    patient's time zone is re-assessed once (a raise applies at once, re-planning its checkpoints) and
    stamped `medication_deadline_checked_at`. Rows are claimed with SKIP LOCKED and the stamp is
    written in the same transaction, so a repeated or concurrent sweep scores nothing twice. A later
    medication record re-assesses through its own path. Returns how many procedures were scored."""
    days = min(protocol_rules.get_protocol(v).medication_deadline_days for v in protocol_rules.available_versions())
    unscored = Procedure.objects.filter(
        medication_deadline_checked_at__isnull=True, patient__status=PatientStatus.ACTIVE
    )
    # No time zone is more than a day ahead of UTC: a procedure anchored later cannot be due yet.
    near = (
        unscored.alias(anchor=Coalesce("fracture_diagnosed_on", "performed_on"))
        .filter(anchor__lte=now.date() - timedelta(days=days - 1), risk_assessments__is_current=True)
        .select_related("patient")
    )
    due = [procedure.pk for procedure in near if _deadline_passed(procedure, now)]
    scored = 0
    for ids in claimed_batches(unscored.filter(pk__in=due).values_list("id", flat=True), batch_size):
        for procedure in Procedure.objects.filter(id__in=ids).select_related("patient__clinic"):
            today = now.astimezone(ZoneInfo(procedure.patient.time_zone)).date()
            reassess_and_replan(procedure=procedure, reason="week-16 medication deadline passed", today=today)
        Procedure.objects.filter(id__in=ids).update(medication_deadline_checked_at=now)
        scored += len(ids)
    return scored


def _deadline_passed(procedure: Procedure, now: datetime) -> bool:
    """Whether the week-16 medication deadline (F+112, the day itself included) is over on the
    patient's local date at `now`."""
    anchor = procedure.fracture_diagnosed_on or procedure.performed_on
    deadline = anchor + timedelta(days=procedure_protocol(procedure).medication_deadline_days)
    return now.astimezone(ZoneInfo(procedure.patient.time_zone)).date() > deadline
