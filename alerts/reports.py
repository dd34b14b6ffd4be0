"""Symptom reports: submitted, evaluated by the protocol's rules, and acted on.

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

from patients.models import Patient, PatientStatus, Procedure
from patients.protocol import get_protocol
from patients.services import trigger_checkpoint

from .checkins import answer_checkin
from .escalation import raise_alert
from .models import CheckIn, ReportSource, SymptomReport
from .reviews import open_review_task
from .rules import SO_ANSWERS, Finding, PainPoint, Report, Rules, evaluate, get_rules


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
    imaging red flags plans the protocol's imaging review checkpoint. A report through a check-in link marks the
    check-in answered (once) and completes its checkpoint. Everything or nothing is written.
    """
    now = timezone.now()
    patient = Patient.objects.select_for_update().get(pk=procedure.patient_id)  # one report at a time per patient
    rules = get_rules(procedure.protocol_version or patient.clinic.protocol_version)
    report = SymptomReport(
        patient=patient,
        procedure=procedure,
        checkin=checkin,
        source=source,
        entered_by=entered_by,
        reported_at=reported_at or now,
        pain_now=pain_now,
        pain_average_24h=pain_average_24h,
        red_flags=sorted(set(red_flags)),
        protocol_version=rules.version,
        **answers,
    )
    report.second_opinion = _validated_answers(rules, report, second_opinion)
    report.day = _checked_day(report, now=now)
    history = _history(procedure, report.reported_at)
    findings = evaluate(_facts(report), history, rules, baseline=procedure.baseline_pain)
    report.findings = [asdict(finding) for finding in findings]
    report.full_clean(exclude=["patient", "procedure"])  # both were just loaded (and the patient locked)
    report.save()
    if checkin is not None:
        answer_checkin(checkin=checkin, report=report)
    for finding in findings:
        _act_on(finding, report, now=now)
    return report


def _validated_answers(rules: Rules, report: SymptomReport, second_opinion: dict | None) -> dict[str, str]:
    """The report's second-opinion answers, once its pain scores, red-flag codes and answers are
    known to the rules; a ValidationError naming every bad field otherwise."""
    errors: dict[str, list[str]] = {}
    for name in ("pain_now", "pain_average_24h"):
        value = getattr(report, name)
        if value is None and name == "pain_now":
            errors[name] = ["Pain now (0–10) is required."]
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10):
            errors[name] = ["Give a whole number from 0 to 10."]
    known = {flag.id for flag in rules.red_flags}
    unknown = sorted(set(report.red_flags) - known)
    if unknown:
        first, last = rules.red_flags[0].id, rules.red_flags[-1].id
        errors["red_flags"] = [f"Unknown red-flag code(s): {', '.join(unknown)}. Known: {first} … {last}."]
    so_known = {opinion.id for opinion in rules.second_opinion}
    for code, answer in (second_opinion or {}).items():
        if code not in so_known:
            errors["second_opinion"] = [f"Unknown question {code!r}; known: {', '.join(sorted(so_known))}."]
        elif answer not in SO_ANSWERS:
            errors["second_opinion"] = [f"{code}: answer must be one of {', '.join(SO_ANSWERS)}."]
    if errors:
        raise ValidationError(errors)
    return dict(second_opinion or {})


def _checked_day(report: SymptomReport, *, now: datetime) -> int:
    """Days from the procedure to the report, in the patient's time zone, once the report's time,
    source and patient allow it to be taken."""
    if report.reported_at > now + timedelta(minutes=5):
        raise ValidationError({"reported_at": ["The report time is in the future."]})
    local: date = report.reported_at.astimezone(ZoneInfo(report.patient.time_zone)).date()
    day = (local - report.procedure.performed_on).days
    if day < 0:
        raise ValidationError({"reported_at": ["The report time is before the procedure."]})
    if report.source not in ReportSource.values:
        raise ValidationError({"source": [f"Unknown source {report.source!r}."]})
    if report.patient.status != PatientStatus.ACTIVE:
        raise ValidationError({"patient": [f"The patient is {report.patient.status}; no report can be taken."]})
    return day


def _facts(report: SymptomReport) -> Report:
    """The report as the rules read it."""
    return Report(
        day=report.day,
        pain_now=report.pain_now,
        pain_average_24h=report.pain_average_24h,
        red_flags=frozenset(report.red_flags),
        second_opinion=report.second_opinion,
        reported_at=report.reported_at,
    )


def _history(procedure: Procedure, before: datetime) -> list[PainPoint]:
    return [
        PainPoint(day=day, pain_now=pain)
        for day, pain in SymptomReport.objects.filter(procedure=procedure, reported_at__lt=before)
        .order_by("reported_at", "id")
        .values_list("day", "pain_now")
    ]


def _act_on(finding: Finding, report: SymptomReport, *, now: datetime) -> None:
    """An alert (paged), a review task or an extra check-in for one finding, and the imaging review
    its red flag asks for, with the intervals and checkpoint of the report's protocol."""
    protocol = get_protocol(report.protocol_version)
    if finding.kind == "alert":
        raise_alert(report, finding, now=now)
    elif finding.kind == "review":
        open_review_task(
            patient=report.patient,
            code=finding.code,
            tier=finding.tier,
            action=finding.action,
            source=finding.source,
            report=report,
            now=now,
        )
    else:
        CheckIn.objects.create(
            patient=report.patient,
            procedure=report.procedure,
            reason=finding.code,
            next_action_at=now + protocol.extra_checkin_after,
        )
    if finding.imaging_review:
        review = protocol.checkpoint_for_role("imaging_review")
        trigger_checkpoint(procedure=report.procedure, code=review, reason=f"{finding.code} reported")
