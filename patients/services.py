"""Every write to the registry and the follow-up schedule. Keyword-only, atomic, validated.

A `ValidationError` leaves nothing written: each function runs in one transaction.
"""

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import protocol as protocol_rules
from .models import (
    OPEN_STATES,
    Checkpoint,
    CheckpointEvent,
    CheckpointState,
    Clinic,
    Patient,
    PatientStatus,
    Procedure,
    RiskAssessment,
    TreatedLevel,
)

# --- Registry -----------------------------------------------------------------------------------


@transaction.atomic
def register_patient(*, clinic: Clinic, **fields: Any) -> Patient:
    """Create one Patient row in `clinic`."""
    patient = Patient(clinic=clinic, **fields)
    duplicate = ValidationError({"mrn": ["A patient with this MRN is already registered in this clinic."]})
    if Patient.objects.filter(clinic=clinic, mrn=patient.mrn).exists():
        raise duplicate
    # The MRN's uniqueness is left to the database below: a row committed by a racing request since
    # the check above must give the same `mrn` error, not full_clean's own wording under "__all__".
    patient.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            patient.save()
    except IntegrityError:
        raise duplicate from None  # registered by a concurrent request a moment ago
    return patient


@transaction.atomic
def update_patient(*, patient: Patient, reason: str = "patient record changed", **fields: Any) -> Patient:
    """Change the given fields of one Patient row and re-assess each of the patient's procedures."""
    was_active = Patient.objects.filter(pk=patient.pk, status=PatientStatus.ACTIVE).exists()
    for name, value in fields.items():
        setattr(patient, name, value)
    patient.full_clean()
    patient.save()
    if was_active and patient.status != PatientStatus.ACTIVE:
        stop_follow_up(patient=patient, reason=f"patient {patient.status}")
    for procedure in patient.procedures.all():
        refresh_procedure(procedure=procedure, reason=reason)
    return patient


@transaction.atomic
def record_procedure(
    *, patient: Patient, levels: Iterable[Mapping[str, Any]], schedule: bool = True, **fields: Any
) -> Procedure:
    """Create one Procedure row, a TreatedLevel row per level, its risk assessment and its schedule
    (unless `schedule=False`: the caller then plans many at once with `schedule_procedures`).

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
    if schedule:
        schedule_procedure(procedure=procedure)
    return procedure


# --- Risk ---------------------------------------------------------------------------------------


def _any_true(values: list[bool | None]) -> bool | None:
    if any(value is True for value in values):
        return True
    if values and all(value is False for value in values):
        return False
    return None


def risk_facts(procedure: Procedure, *, today: date, protocol: protocol_rules.Protocol) -> dict[str, Any]:
    """The facts of spec §2 for one procedure, as `protocol.assess` reads them; None = not recorded."""
    patient = procedure.patient
    levels = list(procedure.levels.all())
    distributions = [level.cement_distribution or None for level in levels]
    hu_values = [level.hounsfield_units for level in levels if level.hounsfield_units is not None]
    deadline = (procedure.fracture_diagnosed_on or procedure.performed_on) + timedelta(
        days=protocol.medication_deadline_days
    )
    started = patient.osteoporosis_med_started_on
    if today <= deadline or (patient.on_osteoporosis_med and started and started <= deadline):
        no_medication = False
    elif patient.on_osteoporosis_med is None:
        no_medication = None
    else:
        no_medication = True
    per_level = {
        "intravertebral_cleft": [level.intravertebral_cleft for level in levels],
        "cement_leakage": [level.cement_leakage for level in levels],
        "cement_separated": [None if value is None else value == "separated" for value in distributions],
        "lowest_hu": [level.hounsfield_units for level in levels],
    }
    return {
        # Facts recorded for some treated levels but not all: scored, and listed as missing too.
        "partly_recorded": {name for name, values in per_level.items() if None in values},
        "intravertebral_cleft": _any_true([level.intravertebral_cleft for level in levels]),
        "cement_leakage": _any_true([level.cement_leakage for level in levels]),
        "cement_separated": _any_true([None if value is None else value == "separated" for value in distributions]),
        "lowest_hu": min(hu_values) if hu_values else None,
        "tl_junction": any(level.level in protocol.tl_junction_levels for level in levels),
        "posterior_fascia_oedema": procedure.posterior_fascia_oedema,
        "facet_joint_violation": procedure.facet_joint_violation,
        "bmd_lowest_t_score": float(patient.bmd_lowest_t_score) if patient.bmd_lowest_t_score is not None else None,
        "age": patient.age_on(today),
        "no_medication_by_week_16": no_medication,
    }


def _day14_pain(procedure: Procedure) -> int | None:
    cp03 = procedure.checkpoints.filter(code="CP-03", state=CheckpointState.COMPLETED).first()
    return cp03.pain_score if cp03 else None


def procedure_protocol(procedure: Procedure) -> protocol_rules.Protocol:
    return protocol_rules.get_protocol(procedure.protocol_version or procedure.patient.clinic.protocol_version)


def compute_assessment(procedure: Procedure, *, today: date | None = None) -> protocol_rules.Assessment:
    rules = procedure_protocol(procedure)
    facts = risk_facts(procedure, today=today or timezone.localdate(), protocol=rules)
    return protocol_rules.assess(
        facts, rules, new_fracture=procedure.new_fracture_diagnosed_on is not None, day14_pain=_day14_pain(procedure)
    )


@transaction.atomic
def reassess(*, procedure: Procedure, reason: str) -> RiskAssessment:
    """Re-compute the risk of one procedure. A changed result becomes the current RiskAssessment row;
    a changed tier re-plans the procedure's future checkpoints."""
    current = procedure.risk_assessments.select_for_update().filter(is_current=True).first()
    result = compute_assessment(procedure)
    factors = [vars(contribution) | {} for contribution in result.factors]
    if current and (current.tier, current.pain_points, current.fracture_points, current.factors, current.missing) == (
        result.tier,
        result.pain_points,
        result.fracture_points,
        factors,
        list(result.missing),
    ):
        return current
    if current:
        current.is_current = False
        current.save(update_fields=["is_current"])
    assessment = RiskAssessment.objects.create(
        procedure=procedure,
        tier=result.tier,
        pain_points=result.pain_points,
        fracture_points=result.fracture_points,
        factors=factors,
        missing=list(result.missing),
        reasons=list(result.reasons),
        protocol_version=procedure_protocol(procedure).version,
        change_reason=reason[:200],
    )
    if current is None or current.tier != assessment.tier:
        before = current.get_tier_display().lower() if current else "none"
        replan(
            procedure=procedure, reason=f"tier {before} → {assessment.tier}: {reason}"[:300], initial=current is None
        )
    return assessment


@transaction.atomic
def refresh_procedure(*, procedure: Procedure, reason: str) -> RiskAssessment:
    """After an input changed: re-assess the risk and bring the schedule in line with the plan."""
    assessment = reassess(procedure=procedure, reason=reason)
    replan(procedure=procedure, reason=reason)
    return assessment


def current_tier(procedure: Procedure) -> str:
    assessment = procedure.risk_assessments.filter(is_current=True).first()
    return assessment.tier if assessment else "standard"


# --- Schedule -----------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def local_moment(day: date, at: time, zone: str) -> datetime:
    """The instant `day` at `at` in `zone`, in UTC. Daylight-saving changes are resolved here."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))


def reminder_time(clinic: Clinic, rules: protocol_rules.Protocol) -> time:
    return clinic.reminder_time or rules.reminder_time


def schedule_facts(procedure: Procedure) -> protocol_rules.ScheduleFacts:
    patient = procedure.patient
    return protocol_rules.ScheduleFacts(
        procedure_date=procedure.performed_on,
        fracture_date=procedure.fracture_diagnosed_on,
        medication_started_on=patient.osteoporosis_med_started_on if patient.on_osteoporosis_med else None,
        last_dxa_on=patient.dxa_date,
        brace_prescribed=procedure.brace_prescribed,
    )


def _moments(item, *, zone: str, at: time) -> dict[str, Any]:
    return {
        "window_start": item.earliest,
        "target_date": item.target,
        "window_end": item.latest,
        "opens_at": local_moment(item.earliest, time(0), zone),
        "due_at": local_moment(item.target, at, zone),
        "closes_at": local_moment(item.latest + timedelta(days=1), time(0), zone),
    }


def _planned_values(procedure_id: int, item, *, zone: str, at: time, version: str) -> dict[str, Any]:
    """The field values of a newly planned checkpoint (the rest take their defaults)."""
    moments = _moments(item, zone=zone, at=at)
    reminds = item.audience != "coordinator_task" and item.reminder_max > 0
    return {
        "procedure_id": procedure_id,
        "code": item.code,
        "sequence": item.sequence,
        "title": item.title,
        "audience": item.audience,
        "source": item.source,
        "protocol_version": version,
        "priority": item.priority,
        "calendar": item.calendar or item.audience == "clinician_visit",
        "reminder_every_days": item.reminder_every_days,
        "reminder_max": item.reminder_max,
        "next_reminder_at": moments["due_at"] if reminds else None,
        **moments,
    }


def _planned_row(procedure: Procedure, item, *, zone: str, at: time, version: str) -> Checkpoint:
    return Checkpoint(**_planned_values(procedure.pk, item, zone=zone, at=at, version=version))


@transaction.atomic
def schedule_procedure(*, procedure: Procedure) -> RiskAssessment:
    """Fix the procedure's protocol version to its clinic's, assess its risk and plan its checkpoints."""
    if not procedure.protocol_version:
        procedure.protocol_version = procedure.patient.clinic.protocol_version
        procedure.save(update_fields=["protocol_version", "updated_at"])
    return reassess(procedure=procedure, reason="procedure recorded")


@transaction.atomic
def schedule_procedures(*, procedure_ids: Iterable[int]) -> int:
    """Assess and plan many newly recorded procedures at once (an import, a migration of records):
    the same assessment and plan as `schedule_procedure`, written as one INSERT of assessments and
    one of checkpoints per batch. Procedures already assessed are left alone. Returns the number
    of checkpoints planned."""
    procedures = list(
        Procedure.objects.filter(pk__in=list(procedure_ids), risk_assessments__isnull=True, patient__status="active")
        .select_related("patient__clinic")
        .prefetch_related("levels")
        .select_for_update(of=("self",))
    )
    today = timezone.localdate()
    assessments, rows, unversioned = [], [], {}
    for procedure in procedures:
        if not procedure.protocol_version:
            procedure.protocol_version = procedure.patient.clinic.protocol_version
            unversioned.setdefault(procedure.protocol_version, []).append(procedure.pk)
        rules = protocol_rules.get_protocol(procedure.protocol_version)
        facts = risk_facts(procedure, today=today, protocol=rules)
        result = protocol_rules.assess(facts, rules, new_fracture=procedure.new_fracture_diagnosed_on is not None)
        assessments.append(
            RiskAssessment(
                procedure=procedure,
                tier=result.tier,
                pain_points=result.pain_points,
                fracture_points=result.fracture_points,
                factors=[vars(c) | {} for c in result.factors],
                missing=list(result.missing),
                reasons=list(result.reasons),
                protocol_version=rules.version,
                change_reason="procedure recorded",
            )
        )
        zone, at = procedure.patient.time_zone, reminder_time(procedure.patient.clinic, rules)
        for item in protocol_rules.plan(schedule_facts(procedure), result.tier, rules):
            rows.append(_planned_values(procedure.pk, item, zone=zone, at=at, version=rules.version))
    for version, ids in unversioned.items():
        Procedure.objects.filter(pk__in=ids).update(protocol_version=version, updated_at=timezone.now())
    RiskAssessment.objects.bulk_create(assessments, batch_size=2000)
    _insert_checkpoints(rows)
    return len(rows)


def _insert_checkpoints(rows: list[dict[str, Any]]) -> None:
    """Write many new checkpoints given as field values. On PostgreSQL one COPY (the values are
    plain dates, times, numbers and text, so they need no conversion); elsewhere `bulk_create`."""
    if connection.vendor != "postgresql":
        Checkpoint.objects.bulk_create([Checkpoint(**values) for values in rows], batch_size=2000)
        return
    now = timezone.now()
    fields = [field for field in Checkpoint._meta.concrete_fields if not field.primary_key]
    defaults = {field.attname: field.get_default() for field in fields} | {"created_at": now, "updated_at": now}
    names = [field.attname for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {connection.ops.quote_name(Checkpoint._meta.db_table)} ({columns}) FROM STDIN"  # noqa: S608
        ) as copy,
    ):
        for values in rows:
            copy.write_row([values[name] if name in values else defaults[name] for name in names])


@transaction.atomic
def replan(*, procedure: Procedure, reason: str, initial: bool = False) -> None:
    """Bring the procedure's scheduled checkpoints in line with the plan for its current tier.

    Completed, missed, due, triggered and staff-rescheduled checkpoints are never rewritten. Scheduled
    ones that the plan moves are updated, ones it drops are cancelled, new ones are created; each
    change is a CheckpointEvent carrying `reason`. Planning twice equals planning once.
    """
    if procedure.patient.status != PatientStatus.ACTIVE:
        return
    rules = procedure_protocol(procedure)
    clinic = procedure.patient.clinic
    zone, at = procedure.patient.time_zone, reminder_time(clinic, rules)
    planned = protocol_rules.plan(schedule_facts(procedure), current_tier(procedure), rules)
    rows = list(procedure.checkpoints.select_for_update())
    existing = {(row.code, row.sequence): row for row in rows if row.state != CheckpointState.CANCELLED}
    kept_cancelled = {(row.code, row.sequence) for row in rows if row.cancelled_by_staff}
    now = timezone.now()
    created, events = [], []
    for item in planned:
        row = existing.pop(item.key, None)
        if row is None:
            fresh = _planned_row(procedure, item, zone=zone, at=at, version=rules.version)
            # Staff cancellations stand; a re-plan adds nothing whose window has already closed.
            if item.key not in kept_cancelled and (initial or fresh.closes_at > now):
                created.append(fresh)
            continue
        if row.state == CheckpointState.DUE and row.priority != item.priority:
            # An open FLS item gains (or loses) priority with the tier; nothing else of it moves.
            Checkpoint.objects.filter(pk=row.pk).update(priority=item.priority, updated_at=now)
            events.append(
                CheckpointEvent(
                    checkpoint=row, kind=CheckpointEvent.Kind.REPLANNED, reason=reason, data={"priority": item.priority}
                )
            )
        if row.state != CheckpointState.SCHEDULED or row.rescheduled_at or row.triggered:
            continue
        fresh = _planned_row(procedure, item, zone=zone, at=at, version=rules.version)
        changed = {
            name: getattr(fresh, name)
            for name in (
                "window_start",
                "target_date",
                "window_end",
                "opens_at",
                "due_at",
                "closes_at",
                "priority",
                "next_reminder_at",
            )
            if getattr(fresh, name) != getattr(row, name)
            and not (name == "next_reminder_at" and (row.reminders_sent or row.needs_review))
        }
        if changed:
            Checkpoint.objects.filter(pk=row.pk).update(**changed, updated_at=timezone.now())
            events.append(
                CheckpointEvent(
                    checkpoint=row,
                    kind=CheckpointEvent.Kind.REPLANNED,
                    reason=reason,
                    data={"target_date": str(item.target)},
                )
            )
    for row in existing.values():
        if row.state == CheckpointState.SCHEDULED and not row.triggered and not row.rescheduled_at:
            _transition(row, CheckpointState.CANCELLED, kind=CheckpointEvent.Kind.CANCELLED, reason=reason)
    for row in Checkpoint.objects.bulk_create(created):
        events.append(CheckpointEvent(checkpoint=row, kind=CheckpointEvent.Kind.PLANNED, reason=reason))
    CheckpointEvent.objects.bulk_create(events)


# Staff may still act on a missed checkpoint: complete it late, give it a new date, or cancel it.
ACTIONABLE_STATES = (*OPEN_STATES, CheckpointState.MISSED)


def _transition(
    checkpoint: Checkpoint,
    state: str,
    *,
    kind: str,
    reason: str = "",
    by=None,
    from_states=OPEN_STATES,
    **fields: Any,
) -> bool:
    """Move a checkpoint in `from_states` to `state` by a conditional UPDATE; False if someone got
    there first."""
    now = timezone.now()
    if state not in OPEN_STATES:
        fields.setdefault("next_reminder_at", None)
    changed = Checkpoint.objects.filter(pk=checkpoint.pk, state__in=from_states).update(
        state=state, updated_at=now, **fields
    )
    if changed:
        CheckpointEvent.objects.create(checkpoint=checkpoint, kind=kind, at=now, by=by, reason=reason[:300])
        checkpoint.refresh_from_db()
    return bool(changed)


def _not_open(checkpoint: Checkpoint) -> ValidationError:
    return ValidationError({"state": [f"Checkpoint {checkpoint.code} is {checkpoint.state}; it can no longer change."]})


@transaction.atomic
def complete_checkpoint(
    *,
    checkpoint: Checkpoint,
    by=None,
    notes: str = "",
    pain_score: int | None = None,
    dxa_t_score=None,
    dxa_date: date | None = None,
    medication_started: bool | None = None,
    medication_drug: str = "",
    medication_started_on: date | None = None,
    medication_not_started_reason: str = "",
) -> Checkpoint:
    """Complete one open checkpoint with its outcome; reminders stop at once.

    A DXA result updates the patient's lowest T-score and DXA date; a medication start updates the
    patient's osteoporosis medication (and plans the repeat DXA, CP-13). Then every procedure of the
    patient is re-assessed.
    """
    outcome = Checkpoint(
        pk=checkpoint.pk,
        procedure=checkpoint.procedure,
        pain_score=pain_score,
        dxa_t_score=dxa_t_score,
        dxa_date=dxa_date,
        medication_started=medication_started,
        medication_drug=medication_drug,
        medication_started_on=medication_started_on,
        medication_not_started_reason=medication_not_started_reason,
        outcome_notes=notes,
    )
    errors = {}
    try:
        outcome.clean_fields(
            exclude=[
                f.name
                for f in Checkpoint._meta.fields
                if f.name
                not in {
                    "pain_score",
                    "dxa_t_score",
                    "dxa_date",
                    "medication_drug",
                    "medication_started_on",
                    "medication_not_started_reason",
                    "outcome_notes",
                }
            ]
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if (dxa_t_score is None) != (dxa_date is None):
        errors["dxa_date"] = ["A DXA result needs both the T-score and the date."]
    if medication_started and not (medication_drug and medication_started_on):
        errors["medication_drug"] = ["A medication start needs the drug and the start date."]
    if medication_started is False and not medication_not_started_reason:
        errors["medication_not_started_reason"] = ["Give the documented reason the medication was not started."]
    if checkpoint.code == "CP-07" and medication_started is None:
        errors["medication_started"] = ["CP-07 needs the medication started, or the reason why not."]
    if checkpoint.code in {"CP-06", "CP-13"} and dxa_t_score is None:
        errors["dxa_t_score"] = [f"{checkpoint.code} needs the DXA result (T-score and date)."]
    if errors:
        raise ValidationError(errors)
    if not _transition(
        checkpoint,
        CheckpointState.COMPLETED,
        kind=CheckpointEvent.Kind.COMPLETED,
        by=by,
        reason="completed" if checkpoint.state != CheckpointState.MISSED else "completed after its window",
        from_states=ACTIONABLE_STATES,
        completed_at=timezone.now(),
        completed_by=by,
        outcome_notes=notes,
        pain_score=pain_score,
        dxa_t_score=dxa_t_score,
        dxa_date=dxa_date,
        medication_started=medication_started,
        medication_drug=medication_drug,
        medication_started_on=medication_started_on,
        medication_not_started_reason=medication_not_started_reason,
    ):
        raise _not_open(checkpoint)
    _apply_outcome(
        checkpoint,
        dxa_t_score=dxa_t_score,
        dxa_date=dxa_date,
        medication_started=medication_started,
        medication_drug=medication_drug,
        medication_started_on=medication_started_on,
    )
    return checkpoint


def _apply_outcome(checkpoint: Checkpoint, **outcome: Any) -> None:
    patient = Patient.objects.select_for_update().get(pk=checkpoint.procedure.patient_id)
    changes: dict[str, Any] = {}
    if outcome["dxa_t_score"] is not None:
        changes.update(bmd_lowest_t_score=outcome["dxa_t_score"], dxa_date=outcome["dxa_date"])
    if outcome["medication_started"]:
        changes.update(
            on_osteoporosis_med=True,
            osteoporosis_drug=outcome["medication_drug"],
            osteoporosis_med_started_on=outcome["medication_started_on"],
        )
    elif outcome["medication_started"] is False and patient.on_osteoporosis_med is None:
        changes.update(on_osteoporosis_med=False)
    for name, value in changes.items():
        setattr(patient, name, value)
    if changes:
        patient.save(update_fields=[*changes, "updated_at"])
    for procedure in patient.procedures.all():
        refresh_procedure(procedure=procedure, reason=f"{checkpoint.code} completed")


@transaction.atomic
def reschedule_checkpoint(*, checkpoint: Checkpoint, target_date: date, reason: str, by=None) -> Checkpoint:
    """Move an open or missed checkpoint's target (widening its window to include it); it is open
    again, and re-plans leave it alone."""
    if not reason.strip():
        raise ValidationError({"reason": ["Give the reason for the new date."]})
    if target_date < checkpoint.procedure.performed_on:
        raise ValidationError({"target_date": ["The new date is before the procedure."]})
    if target_date < timezone.localdate(timezone=ZoneInfo(checkpoint.procedure.patient.time_zone)):
        raise ValidationError({"target_date": ["The new date is in the past (in the patient's time zone)."]})
    rules = procedure_protocol(checkpoint.procedure)
    zone = checkpoint.procedure.patient.time_zone
    at = reminder_time(checkpoint.procedure.patient.clinic, rules)
    start = min(checkpoint.window_start, target_date)
    end = max(checkpoint.window_end, target_date)
    due_at = local_moment(target_date, at, zone)
    opens_at = local_moment(start, time(0), zone)
    if not _transition(
        checkpoint,
        CheckpointState.DUE if opens_at <= timezone.now() else CheckpointState.SCHEDULED,
        kind=CheckpointEvent.Kind.RESCHEDULED,
        by=by,
        reason=reason,
        from_states=ACTIONABLE_STATES,
        target_date=target_date,
        window_start=start,
        window_end=end,
        due_at=due_at,
        opens_at=opens_at,
        closes_at=local_moment(end + timedelta(days=1), time(0), zone),
        rescheduled_at=timezone.now(),
        next_reminder_at=due_at if checkpoint.audience != "coordinator_task" and checkpoint.reminder_max else None,
        reminders_sent=0,
    ):
        raise _not_open(checkpoint)
    return checkpoint


@transaction.atomic
def cancel_checkpoint(*, checkpoint: Checkpoint, reason: str, by=None) -> Checkpoint:
    """Cancel an open or missed checkpoint; its reminders stop at once."""
    if not reason.strip():
        raise ValidationError({"reason": ["Give the reason for cancelling."]})
    if not _transition(
        checkpoint,
        CheckpointState.CANCELLED,
        kind=CheckpointEvent.Kind.CANCELLED,
        by=by,
        reason=reason,
        from_states=ACTIONABLE_STATES,
        cancelled_by_staff=True,
    ):
        raise _not_open(checkpoint)
    return checkpoint


@transaction.atomic
def trigger_checkpoint(*, procedure: Procedure, code: str, reason: str) -> Checkpoint:
    """Plan a triggered checkpoint (CP-16 imaging review) from today, unless one is already open.
    Its window comes from the protocol; staff arrange it, so the patient gets no reminder."""
    existing = procedure.checkpoints.open().filter(code=code).first()
    if existing:
        return existing
    rules = procedure_protocol(procedure)
    rule = rules.checkpoint(code)
    today = timezone.localdate()
    item = protocol_rules.PlannedCheckpoint(
        code=code,
        sequence=procedure.checkpoints.filter(code=code).count() + 1,
        title=rule.title,
        audience=rule.audience,
        anchor="trigger",
        earliest=today + timedelta(days=rule.earliest),
        target=today + timedelta(days=rule.target),
        latest=today + timedelta(days=rule.latest),
        source=rule.source,
        reminder_every_days=0,
        reminder_max=0,
    )
    zone, at = procedure.patient.time_zone, reminder_time(procedure.patient.clinic, rules)
    checkpoint = _planned_row(procedure, item, zone=zone, at=at, version=rules.version)
    checkpoint.triggered = True
    checkpoint.save()
    CheckpointEvent.objects.create(checkpoint=checkpoint, kind=CheckpointEvent.Kind.PLANNED, reason=reason[:300])
    return checkpoint


@transaction.atomic
def stop_follow_up(*, patient: Patient, reason: str, by=None) -> int:
    """Cancel every open checkpoint of a withdrawn or deceased patient; returns how many."""
    count = 0
    for checkpoint in Checkpoint.objects.open().filter(procedure__patient=patient):
        count += _transition(
            checkpoint, CheckpointState.CANCELLED, kind=CheckpointEvent.Kind.CANCELLED, by=by, reason=reason
        )
    return count


def sweep_checkpoint_states(*, now: datetime, batch_size: int = 1000) -> dict[str, int]:
    """Scheduled checkpoints whose window opened become due; open ones whose window closed become
    missed (and CP-07 missed re-assesses the risk). Rows are claimed with SKIP LOCKED, so two sweeps
    at once never process the same row."""
    counts = {"due": 0, "missed": 0}
    while True:
        with transaction.atomic():
            ids = list(
                Checkpoint.objects.overdue(at=now)
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            Checkpoint.objects.filter(id__in=ids).update(
                state=CheckpointState.MISSED, next_reminder_at=None, updated_at=now
            )
            CheckpointEvent.objects.bulk_create(
                CheckpointEvent(checkpoint_id=pk, kind=CheckpointEvent.Kind.MISSED, at=now, reason="window closed")
                for pk in ids
            )
            counts["missed"] += len(ids)
            for procedure in Procedure.objects.filter(checkpoints__id__in=ids, checkpoints__code="CP-07").distinct():
                reassess(procedure=procedure, reason="CP-07 missed")
    while True:
        with transaction.atomic():
            ids = list(
                Checkpoint.objects.opening(at=now)
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            Checkpoint.objects.filter(id__in=ids).update(state=CheckpointState.DUE, updated_at=now)
            CheckpointEvent.objects.bulk_create(
                CheckpointEvent(checkpoint_id=pk, kind=CheckpointEvent.Kind.DUE, at=now, reason="window opened")
                for pk in ids
            )
            counts["due"] += len(ids)
    return counts
