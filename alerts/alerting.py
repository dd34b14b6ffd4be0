"""Symptom reports, red-flag alerts, clinician review tasks and escalation.

`submit_report` is the one write path for a report, whoever sends it (check-in form, coordinator
entry in the admin, REST API, FHIR); it runs the rules of `alerts.rules.evaluate` and writes the
report, its alerts, their notifications (as outbox rows) and review tasks in one transaction.
"""

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from patients.models import Checkpoint, CheckpointState, Patient, PatientStatus, Procedure, StaffRole
from patients.services import complete_checkpoint, trigger_checkpoint

from .models import (
    Alert,
    AlertEvent,
    AlertState,
    CheckIn,
    CheckInState,
    Delivery,
    DeliveryKind,
    EscalationPolicy,
    ReportSource,
    ReviewTask,
    SymptomReport,
    Tier,
    WebhookEndpoint,
)
from .outbox import enqueue_deliveries
from .rules import SO_ANSWERS, TIER_ORDER, Finding, PainPoint, Report, evaluate, get_rules

# Escalation when a clinic has set none for a tier. [DESIGN]: minutes for EMERGENCY, hours for
# URGENT, ROUTINE within 2 working days (spec §1).
DEFAULT_POLICIES = {
    Tier.EMERGENCY: [
        {"after_minutes": 0, "notify": "responsible_clinician"},
        {"after_minutes": 10, "notify": "coordinators"},
        {"after_minutes": 20, "notify": "on_call"},
    ],
    Tier.URGENT: [
        {"after_minutes": 0, "notify": "responsible_clinician"},
        {"after_minutes": 120, "notify": "coordinators"},
        {"after_minutes": 240, "notify": "on_call"},
    ],
    Tier.ROUTINE: [
        {"after_minutes": 0, "notify": "responsible_clinician"},
        {"after_minutes": 2880, "notify": "coordinators"},
    ],
}
ROUTINE_REVIEW_WITHIN = timedelta(days=2)  # spec §1 ROUTINE: within 2 working days [DESIGN]
EXTRA_CHECKIN_AFTER = timedelta(days=3)  # PAIN_DAY14: the added check-in goes out 3 days later [DESIGN]


# --- Reports ------------------------------------------------------------------------------------


def _validated_answers(rules, *, pain_now, pain_average_24h, red_flags, second_opinion) -> dict[str, str]:
    errors: dict[str, list[str]] = {}
    for name, value in (("pain_now", pain_now), ("pain_average_24h", pain_average_24h)):
        if value is None and name == "pain_now":
            errors[name] = ["Pain now (0–10) is required."]
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10):
            errors[name] = ["Give a whole number from 0 to 10."]
    known = {flag.id for flag in rules.red_flags}
    unknown = sorted(set(red_flags) - known)
    if unknown:
        errors["red_flags"] = [f"Unknown red-flag code(s): {', '.join(unknown)}. Known: RF-01 … RF-10."]
    so_known = {opinion.id for opinion in rules.second_opinion}
    for code, answer in (second_opinion or {}).items():
        if code not in so_known:
            errors["second_opinion"] = [f"Unknown question {code!r}; known: {', '.join(sorted(so_known))}."]
        elif answer not in SO_ANSWERS:
            errors["second_opinion"] = [f"{code}: answer must be one of {', '.join(SO_ANSWERS)}."]
    if errors:
        raise ValidationError(errors)
    return dict(second_opinion or {})


def _history(procedure: Procedure, before: datetime) -> list[PainPoint]:
    return [
        PainPoint(day=day, pain_now=pain)
        for day, pain in SymptomReport.objects.filter(procedure=procedure, reported_at__lt=before)
        .order_by("reported_at", "id")
        .values_list("day", "pain_now")
    ]


def _local_day(procedure: Procedure, patient: Patient, moment: datetime) -> int:
    local: date = moment.astimezone(ZoneInfo(patient.time_zone)).date()
    return (local - procedure.performed_on).days


@transaction.atomic
def submit_report(
    *,
    procedure: Procedure,
    source: str,
    pain_now: int,
    pain_average_24h: int | None = None,
    red_flags: list[str] | tuple[str, ...] = (),
    second_opinion: dict[str, str] | None = None,
    reported_at: datetime | None = None,
    checkin: CheckIn | None = None,
    entered_by=None,
    **answers: Any,
) -> SymptomReport:
    """Store one symptom report and act on its findings.

    Writes the SymptomReport; for each finding of kind "alert" raises or updates an Alert and writes
    its notification Deliveries; for "review" opens a ReviewTask; for "checkin" adds a CheckIn; for
    imaging red flags plans a CP-16 imaging review. A report through a check-in link marks the
    check-in answered (once) and completes its checkpoint. Everything or nothing is written.
    """
    now = timezone.now()
    reported_at = reported_at or now
    patient = Patient.objects.select_for_update().get(pk=procedure.patient_id)  # one report at a time per patient
    rules = get_rules(procedure.protocol_version or patient.clinic.protocol_version)
    red_flags = sorted(set(red_flags))
    second_opinion = _validated_answers(
        rules, pain_now=pain_now, pain_average_24h=pain_average_24h, red_flags=red_flags, second_opinion=second_opinion
    )
    if reported_at > now + timedelta(minutes=5):
        raise ValidationError({"reported_at": ["The report time is in the future."]})
    day = _local_day(procedure, patient, reported_at)
    if day < 0:
        raise ValidationError({"reported_at": ["The report time is before the procedure."]})
    if source not in ReportSource.values:
        raise ValidationError({"source": [f"Unknown source {source!r}."]})
    if patient.status != PatientStatus.ACTIVE:
        raise ValidationError({"patient": [f"The patient is {patient.status}; no report can be taken."]})

    facts = Report(
        day=day,
        pain_now=pain_now,
        pain_average_24h=pain_average_24h,
        red_flags=frozenset(red_flags),
        second_opinion=second_opinion,
        reported_at=reported_at,
    )
    findings = evaluate(facts, _history(procedure, reported_at), rules, baseline=procedure.baseline_pain)
    report = SymptomReport(
        patient=patient,
        procedure=procedure,
        checkin=checkin,
        source=source,
        entered_by=entered_by,
        reported_at=reported_at,
        day=day,
        pain_now=pain_now,
        pain_average_24h=pain_average_24h,
        red_flags=red_flags,
        second_opinion=second_opinion,
        findings=[asdict(finding) for finding in findings],
        protocol_version=rules.version,
        **answers,
    )
    report.full_clean(exclude=["patient", "procedure"])  # both were just loaded (and the patient locked)
    report.save()
    if checkin is not None:
        _answer_checkin(checkin, report)
    for finding in findings:
        if finding.kind == "alert":
            _raise_alert(report, finding, now=now)
        elif finding.kind == "review":
            open_review_task(
                patient=patient,
                code=finding.code,
                tier=finding.tier,
                action=finding.action,
                source=finding.source,
                report=report,
                now=now,
            )
        else:
            CheckIn.objects.create(
                patient=patient, procedure=procedure, reason=finding.code, next_action_at=now + EXTRA_CHECKIN_AFTER
            )
        if finding.imaging_review:
            trigger_checkpoint(procedure=procedure, code="CP-16", reason=f"{finding.code} reported")
    return report


def _answer_checkin(checkin: CheckIn, report: SymptomReport) -> None:
    answered = CheckIn.objects.filter(pk=checkin.pk, state__in=[CheckInState.INVITED, CheckInState.CALL_NEEDED]).update(
        state=CheckInState.ANSWERED, answered_at=report.created_at, next_action_at=None, updated_at=timezone.now()
    )
    if not answered:
        raise ValidationError({"checkin": ["This check-in has already been answered."]})
    if checkin.checkpoint_id:
        checkpoint = Checkpoint.objects.get(pk=checkin.checkpoint_id)
        if checkpoint.state in (CheckpointState.SCHEDULED, CheckpointState.DUE):
            complete_checkpoint(
                checkpoint=checkpoint, notes=f"check-in report #{report.pk}", pain_score=report.pain_now
            )


# --- Alerts -------------------------------------------------------------------------------------


def policy_for(clinic, tier: str) -> list[dict]:
    policy = EscalationPolicy.objects.filter(clinic=clinic, tier=tier).first()
    return policy.steps if policy else DEFAULT_POLICIES[tier]


def _raise_alert(report: SymptomReport, finding: Finding, *, now: datetime) -> Alert:
    """Open a new alert, or update the patient's live alert for the same rule. Notifies at once for
    a new alert or a higher tier; a repeat at the same or a lower tier only counts."""
    evidence = {"report": report.pk, **finding.evidence}
    alert = (
        Alert.objects.select_for_update()
        .filter(patient=report.patient, code=finding.code, state__in=[AlertState.OPEN, AlertState.ACKNOWLEDGED])
        .first()
    )
    if alert is None:
        policy = policy_for(report.patient.clinic, finding.tier)
        alert = Alert.objects.create(
            patient=report.patient,
            procedure=report.procedure,
            clinic=report.patient.clinic,
            code=finding.code,
            tier=finding.tier,
            protocol_version=report.protocol_version,
            rule_source=finding.source,
            action=finding.action,
            answers=evidence,
            first_report=report,
            last_report=report,
            first_seen_at=now,
            last_seen_at=now,
            policy=policy,
            policy_started_at=now,
        )
        raised = AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.RAISED, at=now, data={"tier": alert.tier})
        _notify_step(alert, level=0, now=now)
        _webhook(alert, "alert.raised", raised, now=now)
        return alert
    alert.count += 1
    alert.last_seen_at, alert.last_report = now, report
    if TIER_ORDER[finding.tier] > TIER_ORDER[alert.tier]:
        # A worse answer: page again under the higher tier's policy, even if it was acknowledged.
        before = alert.tier
        alert.tier, alert.state, alert.answers = finding.tier, AlertState.OPEN, evidence
        alert.policy, alert.policy_started_at, alert.level = policy_for(alert.clinic, finding.tier), now, 0
        alert.save()
        raised = AlertEvent.objects.create(
            alert=alert,
            kind=AlertEvent.Kind.TIER_RAISED,
            at=now,
            data={"from": before, "to": alert.tier, "report": report.pk},
        )
        _notify_step(alert, level=0, now=now)
        _webhook(alert, "alert.tier_raised", raised, now=now)
    else:
        alert.save(update_fields=["count", "last_seen_at", "last_report", "updated_at"])
        AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.REPEATED, at=now, data={"report": report.pk})
    return alert


def _recipients(alert: Alert, target: str) -> list:
    memberships = alert.clinic.memberships.filter(user__is_active=True).exclude(user__email="").select_related("user")
    if target == "responsible_clinician":
        clinician = alert.patient.responsible_clinician
        if clinician and clinician.is_active and clinician.email:
            return [clinician]
        return [m.user for m in memberships.filter(role=StaffRole.CLINICIAN)]
    if target == "coordinators":
        return [m.user for m in memberships.filter(role=StaffRole.COORDINATOR)]
    return [m.user for m in memberships.filter(on_call=True)]


def _notify_step(alert: Alert, *, level: int, now: datetime) -> AlertEvent:
    """Write the e-mails of escalation step `level` and schedule the next step."""
    step = alert.policy[level]
    users = _recipients(alert, step["notify"])
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            kind=DeliveryKind.ALERT,
            cause=f"alert:{alert.pk}:{alert.policy_started_at.timestamp():.6f}:{level}",
            recipient=user.email,
            recipient_user=user,
            clinic=alert.clinic,
            alert=alert,
            next_attempt_at=now,
        )
        for user in users
    )
    following = alert.policy[level + 1] if level + 1 < len(alert.policy) else None
    Alert.objects.filter(pk=alert.pk).update(
        level=level,
        next_escalation_at=(
            alert.policy_started_at + timedelta(minutes=following["after_minutes"]) if following else None
        ),
        updated_at=now,
    )
    event = AlertEvent.objects.create(
        alert=alert,
        kind=AlertEvent.Kind.NOTIFIED if level == 0 else AlertEvent.Kind.ESCALATED,
        at=now,
        data={"level": level, "notify": step["notify"], "recipients": len(users)},
    )
    enqueue_deliveries([delivery.pk for delivery in deliveries])
    return event


def _webhook(alert: Alert, event: str, cause: AlertEvent, *, now: datetime) -> None:
    """One signed webhook delivery per active endpoint of the clinic that listens to `event`."""
    endpoints = WebhookEndpoint.objects.filter(clinic=alert.clinic, active=True)
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            kind=DeliveryKind.WEBHOOK,
            channel="webhook",
            cause=f"{event}:{cause.pk}",
            recipient=f"endpoint:{endpoint.pk}",
            clinic=alert.clinic,
            alert=alert,
            endpoint=endpoint,
            next_attempt_at=now,
            context={"event": event, "alert_event": cause.pk},
        )
        for endpoint in endpoints
        if not endpoint.events or event in endpoint.events
    )
    enqueue_deliveries([delivery.pk for delivery in deliveries])


def sweep_escalations(*, now: datetime, batch_size: int = 100) -> int:
    """Notify the next step for open alerts whose escalation time has come.

    Rows are claimed with SKIP LOCKED; acknowledging takes the same row lock, so an acknowledgement
    either lands before (the row is no longer open) or after (and stops the pages not yet sent).
    """
    escalated = 0
    while True:
        with transaction.atomic():
            alerts = list(
                Alert.objects.filter(state=AlertState.OPEN, next_escalation_at__lte=now)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("clinic", "patient__responsible_clinician")[:batch_size]
            )
            if not alerts:
                return escalated
            for alert in alerts:
                if alert.level + 1 < len(alert.policy):
                    step = _notify_step(alert, level=alert.level + 1, now=now)
                    _webhook(alert, "alert.escalated", step, now=now)
                    escalated += 1
                else:
                    Alert.objects.filter(pk=alert.pk).update(next_escalation_at=None)


@transaction.atomic
def acknowledge_alert(*, alert: Alert, by, via: str, note: str = "") -> Alert:
    """Open → acknowledged by a conditional UPDATE, which waits for any page being sent for this
    alert and stops every page not yet sent, and all further escalation."""
    now = timezone.now()
    changed = Alert.objects.filter(pk=alert.pk, state=AlertState.OPEN).update(
        state=AlertState.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=by,
        acknowledged_via=via,
        acknowledge_note=note,
        next_escalation_at=None,
        updated_at=now,
    )
    if not changed:
        alert.refresh_from_db()
        raise ValidationError({"state": [f"This alert is already {alert.state}."]})
    event = AlertEvent.objects.create(
        alert=alert, kind=AlertEvent.Kind.ACKNOWLEDGED, at=now, by=by, note=note[:300], data={"via": via}
    )
    alert.refresh_from_db()
    _webhook(alert, "alert.acknowledged", event, now=now)
    return alert


@transaction.atomic
def resolve_alert(*, alert: Alert, by, note: str) -> Alert:
    """Open or acknowledged → resolved, with a note saying what was done."""
    if not note.strip():
        raise ValidationError({"note": ["Say how the alert was resolved."]})
    now = timezone.now()
    changed = Alert.objects.filter(pk=alert.pk, state__in=[AlertState.OPEN, AlertState.ACKNOWLEDGED]).update(
        state=AlertState.RESOLVED,
        resolved_at=now,
        resolved_by=by,
        resolve_note=note,
        next_escalation_at=None,
        updated_at=now,
    )
    if not changed:
        raise ValidationError({"state": ["This alert is already resolved."]})
    event = AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.RESOLVED, at=now, by=by, note=note[:300])
    alert.refresh_from_db()
    _webhook(alert, "alert.resolved", event, now=now)
    return alert


# --- Review tasks -------------------------------------------------------------------------------


def open_review_task(*, patient, code: str, tier: str, action: str, source: str, report=None, now=None) -> ReviewTask:
    """Open a clinician review task, or leave the patient's open one for the same code as it is."""
    now = now or timezone.now()
    existing = ReviewTask.objects.filter(patient=patient, code=code, state=ReviewTask.State.OPEN).first()
    if existing:
        return existing
    return ReviewTask.objects.create(
        patient=patient,
        clinic=patient.clinic,
        code=code,
        tier=tier,
        action=action,
        source=source,
        report=report,
        due_at=now + ROUTINE_REVIEW_WITHIN,
    )


@transaction.atomic
def complete_review_task(*, task: ReviewTask, by, note: str) -> ReviewTask:
    if not note.strip():
        raise ValidationError({"note": ["Say what the review found or decided."]})
    changed = ReviewTask.objects.filter(pk=task.pk, state=ReviewTask.State.OPEN).update(
        state=ReviewTask.State.DONE, done_at=timezone.now(), done_by=by, note=note
    )
    if not changed:
        raise ValidationError({"state": ["This review is already done."]})
    task.refresh_from_db()
    return task


# --- Checkpoint webhooks ------------------------------------------------------------------------

CHECKPOINT_WEBHOOK_EVENTS = {
    "completed": "checkpoint.completed",
    "missed": "checkpoint.missed",
    "cancelled": "checkpoint.cancelled",
    "rescheduled": "checkpoint.rescheduled",
}


def sweep_checkpoint_webhooks(*, now: datetime, batch_size: int = 500) -> int:
    """Relay checkpoint transitions (CheckpointEvent rows, written with the transition) to each
    clinic's webhook endpoints. Each endpoint keeps a watermark of the last event queued, advanced in
    the same transaction as the deliveries; the cause is unique per event and endpoint."""
    from patients.models import CheckpointEvent

    written = 0
    for endpoint_id in WebhookEndpoint.objects.filter(active=True).values_list("id", flat=True):
        with transaction.atomic():
            endpoint = WebhookEndpoint.objects.select_for_update(skip_locked=True).filter(pk=endpoint_id).first()
            if endpoint is None:
                continue
            events = list(
                CheckpointEvent.objects.filter(
                    id__gt=endpoint.checkpoint_events_after,
                    kind__in=CHECKPOINT_WEBHOOK_EVENTS,
                    checkpoint__procedure__patient__clinic_id=endpoint.clinic_id,
                ).order_by("id")[:batch_size]
            )
            if not events:
                continue
            wanted = [e for e in events if not endpoint.events or CHECKPOINT_WEBHOOK_EVENTS[e.kind] in endpoint.events]
            deliveries = Delivery.objects.bulk_create(
                Delivery(
                    kind=DeliveryKind.WEBHOOK,
                    channel="webhook",
                    cause=f"{CHECKPOINT_WEBHOOK_EVENTS[e.kind]}:{e.pk}",
                    recipient=f"endpoint:{endpoint.pk}",
                    clinic_id=endpoint.clinic_id,
                    checkpoint_id=e.checkpoint_id,
                    endpoint=endpoint,
                    next_attempt_at=now,
                    context={"event": CHECKPOINT_WEBHOOK_EVENTS[e.kind], "checkpoint_event": e.pk},
                )
                for e in wanted
            )
            endpoint.checkpoint_events_after = events[-1].pk
            endpoint.save(update_fields=["checkpoint_events_after"])
            enqueue_deliveries([delivery.pk for delivery in deliveries])
            written += len(deliveries)
    return written
