"""An alert's life: raised by a report's finding, paged step by step under its escalation policy
until someone acknowledges it, then resolved.

The policy is copied onto the alert when it is raised (or its tier rises), so a clinic changing its
policy later does not change the pages of alerts already open. Acknowledging and resolving are
conditional UPDATEs: the loser of a race changes nothing and is told the alert's state.
"""

from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from patients import access
from patients.models import StaffRole
from patients.protocol import get_protocol
from patients.rows import claimed_batches, transition
from patients.services import StateConflict

from .models import Alert, AlertEvent, AlertState, Delivery, DeliveryKind, EscalationPolicy, SymptomReport
from .outbox import enqueue_deliveries
from .rules import TIER_ORDER, Finding
from .webhooks import write_alert_webhooks

LIVE_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


def policy_for(clinic, tier: str, version: str) -> list[dict]:
    """The clinic's own policy for `tier`, else the default of protocol `version` ([[escalation]])."""
    policy = EscalationPolicy.objects.filter(clinic=clinic, tier=tier).first()
    return policy.steps if policy else get_protocol(version).escalation_policy(tier)


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
    alert.policy_started_at, alert.level = now, 0
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
    alert.state, alert.answers, alert.level = AlertState.OPEN, evidence, 0
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


def notify_step(alert: Alert, *, level: int, now: datetime) -> AlertEvent:
    """Write the e-mails of escalation step `level` (Deliveries, enqueued on commit), set the alert's
    level and next escalation time, and record the step as an AlertEvent."""
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


def sweep_escalations(*, now: datetime, batch_size: int = 100) -> int:
    """Notify the next step for open alerts whose escalation time has come; returns how many escalated.

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
                write_alert_webhooks(alert, "alert.escalated", step, now=now)
                escalated += 1
            else:
                Alert.objects.filter(pk=alert.pk).update(next_escalation_at=None)
    return escalated


# --- Acknowledging and resolving ----------------------------------------------------------------


@transaction.atomic
def acknowledge_alert(*, alert: Alert, by, via: str, note: str = "") -> Alert:
    """Open → acknowledged by a conditional UPDATE, which waits for any page being sent for this
    alert and stops every page not yet sent, and all further escalation. Writes an AlertEvent and
    the "alert.acknowledged" webhooks. A staff user `by` must be allowed to act on alerts in the
    alert's clinic (PermissionDenied otherwise); `by=None` is an API client, checked by its view."""
    if by is not None and not access.can(by, access.Action.ACT_ON_ALERTS, alert.clinic_id):
        raise PermissionDenied("This account may not act on this clinic's alerts.")
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


@transaction.atomic
def resolve_alert(*, alert: Alert, by, note: str) -> Alert:
    """Open or acknowledged → resolved, with a note saying what was done. Writes an AlertEvent and
    the "alert.resolved" webhooks."""
    if not note.strip():
        raise ValidationError({"note": ["Say how the alert was resolved."]})
    now = timezone.now()
    changed = transition(
        Alert.objects.filter(pk=alert.pk),
        LIVE_STATES,
        AlertState.RESOLVED,
        resolved_at=now,
        resolved_by=by,
        resolve_note=note,
        next_escalation_at=None,
        updated_at=now,
    )
    if not changed:
        raise StateConflict("This alert is already resolved.", state=AlertState.RESOLVED)
    event = AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.RESOLVED, at=now, by=by, note=note[:300])
    alert.refresh_from_db()
    write_alert_webhooks(alert, "alert.resolved", event, now=now)
    return alert
