"""An alert's life: raised by a report's finding, paged step by step under its escalation policy
(its last step again and again) until someone acknowledges it, then resolved with a reason, and
reopened if that was a mistake.

The policy is copied onto the alert when it is raised (or its tier rises), so a clinic changing its
policy later does not change the pages of alerts already open. Acknowledging and resolving are
conditional UPDATEs: the loser of a race changes nothing and is told the alert's state.
"""

from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Func, IntegerField
from django.utils import timezone

from patients import access
from patients.protocol import get_protocol
from patients.rows import claimed_batches, transition
from patients.services import StateConflict

from .models import Alert, AlertEvent, AlertState, Delivery, DeliveryKind, ResolutionReason, SymptomReport
from .outbox import enqueue_deliveries
from .recipients import FALLBACK, fallback_recipients, policy_for, step_recipients
from .rules import TIER_ORDER, Finding
from .webhooks import write_alert_webhooks

LIVE_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


# --- Raising ------------------------------------------------------------------------------------


def raise_alert(report: SymptomReport, finding: Finding, *, now: datetime) -> Alert:
    """Open a new alert, or update the patient's live alert for the same rule. Notifies at once for
    a new alert or a higher tier; a repeat of an acknowledged (not resolved) alert makes it live
    again and restarts its escalation (spec §1 capture rules); a repeat of an alert still open and
    paging only counts."""
    evidence = {"report": report.pk, **finding.evidence}
    alert = (
        Alert.objects.select_for_update()
        .filter(patient=report.patient, code=finding.code, state__in=LIVE_STATES)
        .first()
    )
    if alert is None:
        return _open_alert(report, finding, evidence, now=now)
    alert.count += 1
    alert.last_seen_at, alert.last_report = now, report
    if TIER_ORDER[finding.tier] > TIER_ORDER[alert.tier]:
        _raise_tier(alert, report, finding, evidence, now=now)
    elif alert.state == AlertState.ACKNOWLEDGED:
        _reopen(alert, report, evidence, now=now)
    else:
        alert.save(update_fields=["count", "last_seen_at", "last_report", "updated_at"])
        AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.REPEATED, at=now, data={"report": report.pk})
    return alert


def _open_alert(report: SymptomReport, finding: Finding, evidence: dict, *, now: datetime) -> Alert:
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
        policy=policy_for(report.patient.clinic, finding.tier, report.protocol_version),
        policy_started_at=now,
    )
    raised = AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.RAISED, at=now, data={"tier": alert.tier})
    notify_step(alert, level=0, now=now)
    write_alert_webhooks(alert, "alert.raised", raised, now=now)
    return alert


def _raise_tier(alert: Alert, report: SymptomReport, finding: Finding, evidence: dict, *, now: datetime) -> None:
    """A worse answer: page again under the higher tier's policy, even if it was acknowledged."""
    before = alert.tier
    alert.tier, alert.state, alert.answers = finding.tier, AlertState.OPEN, evidence
    alert.policy = policy_for(alert.clinic, finding.tier, report.protocol_version)
    alert.policy_started_at, alert.level, alert.repeats = now, 0, 0
    alert.save()
    raised = AlertEvent.objects.create(
        alert=alert,
        kind=AlertEvent.Kind.TIER_RAISED,
        at=now,
        data={"from": before, "to": alert.tier, "report": report.pk},
    )
    notify_step(alert, level=0, now=now)
    write_alert_webhooks(alert, "alert.tier_raised", raised, now=now)


def _reopen(alert: Alert, report: SymptomReport, evidence: dict, *, now: datetime) -> None:
    """The same red flag again after an acknowledgement: the alert is open again, its policy starts
    over from the first step (a new page), and an AlertEvent says why."""
    acknowledged = {"by": alert.acknowledged_by_id, "at": alert.acknowledged_at.isoformat()}
    alert.state, alert.answers, alert.level, alert.repeats = AlertState.OPEN, evidence, 0, 0
    alert.policy_started_at = now
    alert.acknowledged_at, alert.acknowledged_by, alert.acknowledged_via, alert.acknowledge_note = None, None, "", ""
    alert.save()
    reopened = AlertEvent.objects.create(
        alert=alert,
        kind=AlertEvent.Kind.REOPENED,
        at=now,
        note="Reported again while acknowledged and not resolved: live again, escalation restarted.",
        data={"report": report.pk, "acknowledged": acknowledged},
    )
    notify_step(alert, level=0, now=now)
    write_alert_webhooks(alert, "alert.raised", reopened, now=now)


# --- Paging -------------------------------------------------------------------------------------


def _page_target(alert: Alert, level: int, *, now: datetime) -> tuple[int, str, list]:
    """The step to page from `level` on: an empty step records why and passes on to the next at once;
    past the last one, the clinic-wide fallback (HAZ-44). Returns (level, target, users)."""
    while True:
        target = alert.policy[level]["notify"]
        users = step_recipients(alert.clinic, target, patient=alert.patient)
        last = level + 1 >= len(alert.policy)
        if users:
            return level, target, users
        AlertEvent.objects.create(
            alert=alert,
            kind=AlertEvent.Kind.STEP_EMPTY,
            at=now,
            note="No active member with an e-mail address: "
            + ("paging the whole clinic." if last else "passing on to the next step."),
            data={"level": level, "notify": target, "recipients": 0},
        )
        if last:
            return level, FALLBACK, fallback_recipients(alert.clinic)
        level += 1


def notify_step(alert: Alert, *, level: int, now: datetime, repeat: int = 0) -> AlertEvent:
    """Write the e-mails of escalation step `level` (Deliveries, enqueued on commit), or of the first
    later step with anyone to page, set the alert's level and next escalation time, and record the
    step as an AlertEvent. `repeat` numbers a page of the last step again after the chain ran out; after
    the last step the next one is a repeat, `repeat_minutes` later (protocol [[escalation]], HAZ-45)."""
    first = level == 0 and not repeat
    level, target, users = _page_target(alert, level, now=now)
    cause = f"alert:{alert.pk}:{alert.policy_started_at.timestamp():.6f}:{level}" + (f":r{repeat}" if repeat else "")
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            kind=DeliveryKind.ALERT,
            cause=cause,
            recipient=user.email,
            recipient_user=user,
            clinic=alert.clinic,
            alert=alert,
            next_attempt_at=now,
        )
        for user in users
    )
    following = alert.policy[level + 1] if level + 1 < len(alert.policy) else None
    if following:
        next_at = alert.policy_started_at + timedelta(minutes=following["after_minutes"])
    else:
        next_at = now + get_protocol(alert.protocol_version).escalation_repeat(alert.tier)
    nobody = not users
    Alert.objects.filter(pk=alert.pk).update(
        level=level, next_escalation_at=next_at, nobody_paged_at=now if nobody else None, updated_at=now
    )
    alert.level = level
    data = {"level": level, "notify": target, "recipients": len(users), **({"repeat": repeat} if repeat else {})}
    kind = AlertEvent.Kind.NOTIFIED if first else AlertEvent.Kind.ESCALATED
    event = AlertEvent.objects.create(alert=alert, kind=kind, at=now, data=data)
    if nobody:
        AlertEvent.objects.create(
            alert=alert,
            kind=AlertEvent.Kind.NOBODY_PAGED,
            at=now,
            note="No one who may act on this clinic's alerts has an e-mail address; tried again at the next repeat.",
            data={"level": level},
        )
    enqueue_deliveries([delivery.pk for delivery in deliveries])
    return event


def _repeat_last_step(alert: Alert, *, now: datetime) -> AlertEvent | None:
    """Page the last step again under the next repeat number, claimed by a conditional UPDATE: a
    second sweep holding the same stale row changes nothing and pages no one."""
    claimed = Alert.objects.filter(pk=alert.pk, state=AlertState.OPEN, repeats=alert.repeats).update(
        repeats=F("repeats") + 1
    )
    if not claimed:
        return None
    alert.repeats += 1
    return notify_step(alert, level=len(alert.policy) - 1, now=now, repeat=alert.repeats)


def sweep_escalations(*, now: datetime, batch_size: int = 100) -> int:
    """Notify the next step for open alerts whose escalation time has come, or the last step again
    once the chain ran out (until acknowledged); returns how many were paged.

    Rows are claimed with SKIP LOCKED; acknowledging takes the same row lock, so an acknowledgement
    either lands before (the row is no longer open) or after (and stops the pages not yet sent).
    """
    due = Alert.objects.filter(state=AlertState.OPEN, next_escalation_at__lte=now).select_related(
        "clinic", "patient__responsible_clinician"
    )
    escalated = 0
    for alerts in claimed_batches(due, batch_size):
        for alert in alerts:
            if alert.level + 1 < len(alert.policy):
                step = notify_step(alert, level=alert.level + 1, now=now)
            else:
                step = _repeat_last_step(alert, now=now)
            if step is not None:
                write_alert_webhooks(alert, "alert.escalated", step, now=now)
                escalated += 1
    return escalated


def attention_counts() -> dict[str, int]:
    """For the health page: open alerts whose chain has run out (every step paged, repeating its last
    one) and open alerts whose last page found no one to send to."""
    steps = Func(F("policy"), function="jsonb_array_length", output_field=IntegerField())
    open_alerts = Alert.objects.filter(state=AlertState.OPEN)
    return {
        "chain_exhausted_unacknowledged": open_alerts.alias(steps=steps).filter(level__gte=F("steps") - 1).count(),
        "nobody_paged": open_alerts.filter(nobody_paged_at__isnull=False).count(),
    }


# --- Acknowledging and resolving ----------------------------------------------------------------


@transaction.atomic
def acknowledge_alert(*, alert: Alert, by, via: str, note: str = "") -> Alert:
    """Open → acknowledged by a conditional UPDATE, which waits for any page being sent for this
    alert and stops every page not yet sent, and all further escalation. Writes an AlertEvent and
    the "alert.acknowledged" webhooks. A staff user `by` must be allowed to act on alerts in the
    alert's clinic (PermissionDenied otherwise); `by=None` is an API client, checked by its view."""
    _may_act(by, alert)
    now = timezone.now()
    changed = transition(
        Alert.objects.filter(pk=alert.pk),
        AlertState.OPEN,
        AlertState.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=by,
        acknowledged_via=via,
        acknowledge_note=note,
        next_escalation_at=None,
        updated_at=now,
    )
    if not changed:
        alert.refresh_from_db()
        raise StateConflict(f"This alert is already {alert.state}.", state=alert.state)
    event = AlertEvent.objects.create(
        alert=alert, kind=AlertEvent.Kind.ACKNOWLEDGED, at=now, by=by, note=note[:300], data={"via": via}
    )
    alert.refresh_from_db()
    write_alert_webhooks(alert, "alert.acknowledged", event, now=now)
    return alert


def _may_act(by, alert: Alert) -> None:
    if by is not None and not access.can(by, access.Action.ACT_ON_ALERTS, alert.clinic_id):
        raise PermissionDenied("This account may not act on this clinic's alerts.")


@transaction.atomic
def resolve_alert(*, alert: Alert, by, reason: str, note: str) -> Alert:
    """Open or acknowledged → resolved, with a reason (ResolutionReason) and a note saying what was
    done, both required (HAZ-47). Writes an AlertEvent and the "alert.resolved" webhooks."""
    _may_act(by, alert)
    errors = {}
    if reason not in ResolutionReason.values:
        errors["reason"] = ["Choose why the alert is resolved."]
    if not note.strip():
        errors["note"] = ["Say how the alert was resolved."]
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    changed = transition(
        Alert.objects.filter(pk=alert.pk),
        LIVE_STATES,
        AlertState.RESOLVED,
        resolved_at=now,
        resolved_by=by,
        resolve_reason=reason,
        resolve_note=note,
        next_escalation_at=None,
        updated_at=now,
    )
    if not changed:
        raise StateConflict("This alert is already resolved.", state=AlertState.RESOLVED)
    event = AlertEvent.objects.create(
        alert=alert, kind=AlertEvent.Kind.RESOLVED, at=now, by=by, note=note[:300], data={"reason": reason}
    )
    alert.refresh_from_db()
    write_alert_webhooks(alert, "alert.resolved", event, now=now)
    return alert


@transaction.atomic
def reopen_alert(*, alert: Alert, by, reason: str) -> Alert:
    """Resolved → open again, for a resolution made by mistake (HAZ-47): someone who may act on the
    clinic's alerts says why; escalation starts over from the first step of the alert's policy (a new
    page) and an AlertEvent records who and why. Refused while a newer live alert for the same rule
    exists (that one is paging already)."""
    _may_act(by, alert)
    if not reason.strip():
        raise ValidationError({"reason": ["Say why the alert is reopened."]})
    live = Alert.objects.filter(patient=alert.patient_id, code=alert.code, state__in=LIVE_STATES).exclude(pk=alert.pk)
    if live.exists():
        raise ValidationError({"reason": ["A newer alert for the same rule is live: act on that one."]})
    now = timezone.now()
    resolved = {"by": alert.resolved_by_id, "reason": alert.resolve_reason, "note": alert.resolve_note[:300]}
    changed = transition(
        Alert.objects.filter(pk=alert.pk),
        AlertState.RESOLVED,
        AlertState.OPEN,
        resolved_at=None,
        resolved_by=None,
        resolve_reason="",
        resolve_note="",
        acknowledged_at=None,
        acknowledged_by=None,
        acknowledged_via="",
        acknowledge_note="",
        policy_started_at=now,
        level=0,
        repeats=0,
        updated_at=now,
    )
    if not changed:
        alert.refresh_from_db()
        raise StateConflict(f"This alert is already {alert.state}.", state=alert.state)
    alert.refresh_from_db()
    reopened = AlertEvent.objects.create(
        alert=alert, kind=AlertEvent.Kind.UNRESOLVED, at=now, by=by, note=reason[:300], data={"resolved": resolved}
    )
    notify_step(alert, level=0, now=now)
    write_alert_webhooks(alert, "alert.raised", reopened, now=now)
    return alert
