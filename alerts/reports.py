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
from patients.services import day14_window, procedure_protocol, reassess_and_replan, record_pain, trigger_checkpoint

from . import painkillers
from .checkins import answer_checkin
from .escalation import raise_alert
from .models import AlertEvent, CheckIn, ReportSource, SymptomReport
from .reviews import open_review_task
from .rules import SO_ANSWERS, Finding, PainPoint, Report, Rules, evaluate, get_rules

OPTIONAL_BOOLEANS = (
    "fell_since_last",
    "missed_medication_doses",
    "medication_side_effects",
    "wearing_brace",
    "doing_physio",
)
# An answer that cannot be read is dropped, never allowed to block a red flag of the same report (HAZ-41);
# the reason is fixed per field, so no value the sender typed is stored or echoed.
DROP_REASONS = {
    "pain_now": "Not a whole number from 0 to 10.",
    "pain_average_24h": "Not a whole number from 0 to 10.",
    "painkillers": 'Not a known painkiller kind, or "none" given with another.',
    "other_symptoms": "Not a text of at most 2,000 characters.",
}
ANSWER_REASON = "Not one of the allowed answers."
DROPPABLE = frozenset(
    {"pain_now", "pain_average_24h", "painkillers", "other_symptoms", "second_opinion", *OPTIONAL_BOOLEANS}
)


def dropped_notes(fields) -> list[dict]:
    """The report's notes for answers its sender could not read (a field name or a second-opinion code)."""
    return [
        {"code": "dropped_answer", "field": name, "reason": DROP_REASONS.get(name, ANSWER_REASON)} for name in fields
    ]


@transaction.atomic
def submit_report(
    *,
    procedure: Procedure,
    source: str,
    pain_now: int | None = None,
    pain_average_24h: int | None = None,
    red_flags: list[str] | tuple[str, ...] = (),
    second_opinion: dict[str, str] | None = None,
    reported_at: datetime | None = None,
    checkin: CheckIn | None = None,
    entered_by=None,
    notes: list[dict] | tuple[dict, ...] = (),
    **answers: Any,
) -> SymptomReport:
    """Store one symptom report and act on its findings; everything or nothing is written.

    Capture first (spec §1): any answer is enough. A report with only a red flag answered is stored and
    evaluated like a full one; what is missing is listed in `unanswered` and can be added later with
    `add_answers`. For each finding of kind "alert" raises or updates an Alert and writes its Deliveries;
    for "review" opens a ReviewTask; for "checkin" adds a CheckIn; for imaging red flags plans the
    protocol's imaging review. A report through a check-in link answers it and completes its checkpoint.
    Beside a red flag answered yes, an answer that fails validation is dropped and noted in `notes`, with
    the caller's own (HAZ-41); a patient out of follow-up still has the report taken, noted (HAZ-43).
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
        second_opinion=dict(second_opinion or {}),
        protocol_version=rules.version,
        notes=list(notes),
        **_normalised(answers),
    )
    findings = _checked_and_evaluated(report, rules, now=now)
    report.save()
    if checkin is not None:
        answer_checkin(checkin=checkin, report=report)
    for finding in findings:
        _act_on(finding, report, now=now)
    _feed_tier_inputs(report)
    return report


def _checked_and_evaluated(report: SymptomReport, rules: Rules, *, now: datetime) -> list[Finding]:
    """Validate the new `report` (dropping unreadable other answers beside a red flag), set its day
    and findings, and note a patient out of follow-up; returns the findings to act on."""
    _keeping_red_flags(report, rules, lambda: _validated_answers(rules, report, report.second_opinion))
    report.day = _checked_day(report, now=now)
    # Its patient and procedure were just loaded (and the patient locked).
    _keeping_red_flags(report, rules, lambda: report.full_clean(exclude=["patient", "procedure"]))
    history = _history(report.procedure, report.reported_at) if report.pain_now is not None else []  # pain rules only
    findings = evaluate(_facts(report), history, rules, baseline=report.procedure.baseline_pain)
    report.findings = [asdict(finding) for finding in findings]
    if report.patient.status != PatientStatus.ACTIVE:
        report.notes.append({"code": "patient_not_active", "status": report.patient.status})
    return findings


def _normalised(answers: dict) -> dict:
    """The other answers as the report stores them: painkillers as a list, whether one value (older
    callers) or several were given."""
    if "painkillers" in answers:
        return {**answers, "painkillers": painkillers.as_list(answers["painkillers"])}
    return answers


def _feed_tier_inputs(report: SymptomReport) -> None:
    """A pain score is a tier input wherever it arrives (spec v0.2 §2): kept as a pain reading of the
    procedure, and one in the day-14 window re-assesses it (the cleft rule), raising the tier at once;
    not for a patient out of follow-up, whose plan a report does not change [DESIGN]."""
    if report.pain_now is None:
        return
    procedure = report.procedure
    record_pain(procedure=procedure, day=report.day, pain=report.pain_now, source=f"report ({report.source})")
    first, last = day14_window(procedure_protocol(procedure))
    if first <= report.day <= last and report.patient.status == PatientStatus.ACTIVE:
        reason = f"pain {report.pain_now}/10 on day {report.day} ({report.source})"
        reassess_and_replan(procedure=procedure, reason=reason)


def _validated_answers(rules: Rules, report: SymptomReport, second_opinion: dict | None) -> dict[str, str]:
    """The report's second-opinion answers, once its pain scores, red-flag codes and answers are
    known to the rules; a ValidationError naming every bad field otherwise."""
    errors: dict[str, list[str]] = {}
    for name in ("pain_now", "pain_average_24h"):
        value = getattr(report, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10):
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
    answered_a_flag = bool(report.unanswered) and any(flag.id not in report.unanswered for flag in rules.red_flags)
    nothing = report.pain_now is None and not report.red_flags and not second_opinion and not answered_a_flag
    if not errors and nothing and not _others(report):
        errors["__all__"] = ["Give at least one answer: a red-flag question, the pain score or another question."]
    if errors:
        raise ValidationError(errors)
    return dict(second_opinion or {})


def _keeping_red_flags(report: SymptomReport, rules: Rules, check) -> None:
    """Run `check`; if it refuses only answers other than the red flags of a report with a red flag
    answered yes, drop those answers with a note and run it again (HAZ-41). Anything else is raised."""
    try:
        check()
    except ValidationError as exc:
        if not report.red_flags or not set(exc.message_dict) <= DROPPABLE:
            raise
        for name in sorted(exc.message_dict):
            _drop(report, rules, name)
        check()


def _drop(report: SymptomReport, rules: Rules, name: str) -> None:
    """Forget the answer `name` of `report` (for the second opinion, only its unreadable answers), list
    the question as unanswered and note why."""
    if name == "second_opinion":
        known = {opinion.id for opinion in rules.second_opinion}
        kept = {
            code: answer for code, answer in report.second_opinion.items() if code in known and answer in SO_ANSWERS
        }
        gone = sorted(set(report.second_opinion) - set(kept))
        report.second_opinion = kept
    else:
        gone = [name]
        setattr(report, name, {"painkillers": [], "other_symptoms": ""}.get(name))
    report.notes += dropped_notes(gone)
    questions = [code for code in gone if code != "other_symptoms"]
    report.unanswered = sorted(set(report.unanswered) | set(questions))


def _others(report: SymptomReport) -> bool:
    return bool(report.painkillers or report.other_symptoms.strip()) or any(
        getattr(report, name) is not None for name in OPTIONAL_BOOLEANS
    )


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
        answers={name: getattr(report, name) for name in OPTIONAL_BOOLEANS},
        free_text=report.other_symptoms or "",
    )


def _history(procedure: Procedure, before: datetime) -> list[PainPoint]:
    return [
        PainPoint(day=day, pain_now=pain)
        for day, pain in SymptomReport.objects.filter(
            procedure=procedure, reported_at__lt=before, pain_now__isnull=False
        )
        .order_by("reported_at", "id")
        .values_list("day", "pain_now")
    ]


def _act_on(finding: Finding, report: SymptomReport, *, now: datetime) -> None:
    """An alert (paged), a review task or an extra check-in for one finding, and the imaging review
    its red flag asks for, with the intervals and checkpoint of the report's protocol."""
    protocol = get_protocol(report.protocol_version)
    if finding.kind == "alert":
        alert = raise_alert(report, finding, now=now)
        _note_patient_status(alert, report, now=now)
        return _imaging_review(finding, report, protocol)
    if finding.kind == "checkin":
        CheckIn.objects.create(
            patient=report.patient,
            procedure=report.procedure,
            reason=finding.code,
            next_action_at=now + protocol.extra_checkin_after,
        )
    # A review finding, and the day-14 early warning too: the patient is told a review will happen.
    words = report.other_symptoms if finding.code == get_rules(report.protocol_version).free_text["id"] else ""
    open_review_task(
        patient=report.patient,
        code=finding.code,
        tier=finding.tier,
        action=finding.action,
        source=finding.source,
        report=report,
        now=now,
        detail=words,
    )
    _imaging_review(finding, report, protocol)


def _note_patient_status(alert, report: SymptomReport, *, now: datetime) -> None:
    """An alert raised for a patient out of follow-up says so on its history (HAZ-43)."""
    status = report.patient.status
    if status != PatientStatus.ACTIVE:
        note = f"Reported while the patient's follow-up status is {status}; taken because it has a red flag."
        AlertEvent.objects.create(
            alert=alert, kind=AlertEvent.Kind.NOTE, at=now, note=note, data={"report": report.pk, "status": status}
        )


def _imaging_review(finding: Finding, report: SymptomReport, protocol) -> None:
    if finding.imaging_review:
        review = protocol.checkpoint_for_role("imaging_review")
        trigger_checkpoint(procedure=report.procedure, code=review, reason=f"{finding.code} reported")


# The answers a later page may add or change (red flags and second opinions apart).
ANSWERS = ("pain_now", "pain_average_24h", "painkillers", "other_symptoms", *OPTIONAL_BOOLEANS)


def _take_answers(report: SymptomReport, answers: dict, *, now: datetime, opinions: bool = False) -> dict:
    """Set on `report` each answer given (not blank) that is new or changed, recording a change with
    the earlier value in `report.answer_changes`; returns the answers given. `opinions`: `answers`
    are second-opinion answers (returned for validation, set by the caller)."""
    if "painkillers" in answers:
        answers["painkillers"] = painkillers.as_list(answers["painkillers"])
    given = {
        name: value for name, value in answers.items() if (opinions or name in ANSWERS) and value not in (None, "", [])
    }
    for name, value in given.items():
        before = report.second_opinion.get(name) if opinions else getattr(report, name)
        if before not in (None, "", []) and _sorted(before) != _sorted(value):
            change = {"question": name, "first": before, "changed_to": value, "at": now.isoformat()}
            report.answer_changes = [*report.answer_changes, change]
        if not opinions:
            setattr(report, name, value)
    return given


def _sorted(value):
    return sorted(value) if isinstance(value, list) else value


@transaction.atomic
def add_answers(*, report: SymptomReport, **answers: Any) -> SymptomReport:
    """Add answers sent on a later page (or the optional step) of a check-in to its saved report.

    A question left unanswered takes its answer; an answer already given and sent again different
    (the patient went back and changed it) replaces the earlier one, which is kept in
    `answer_changes` with the moment of the change; a blank never clears an answer. A red flag only
    ever escalates: a "yes" is always taken, even for a red flag answered "no" before, and a later
    "no" never clears a "yes" (HAZ-52) [DESIGN]. The rules run again on the changed report and act
    only on findings the first pass did not have (a red flag alerted at once is not alerted twice).
    Red flags come as `red_flags` (codes answered yes) plus `answered_red_flags` (every red-flag
    code answered, yes or no).
    """
    patient = Patient.objects.select_for_update().get(pk=report.patient_id)
    report = SymptomReport.objects.select_related("procedure").get(pk=report.pk)
    report.patient = patient
    rules = get_rules(report.protocol_version)
    open_questions = set(report.unanswered)
    answered_flags = set(answers.pop("answered_red_flags", ())) & open_questions
    report.red_flags = sorted(set(report.red_flags) | set(answers.pop("red_flags", ())))
    now = timezone.now()
    opinions = answers.pop("second_opinion", None) or {}
    given = _take_answers(report, answers, now=now)
    opinions = _take_answers(report, opinions, now=now, opinions=True)
    report.second_opinion = {**report.second_opinion, **_validated_answers(rules, report, opinions)}
    report.unanswered = sorted(open_questions - set(given) - answered_flags - set(opinions) - {"other_symptoms"})
    known = {finding["code"] for finding in report.findings}
    history = _history(report.procedure, report.reported_at) if report.pain_now is not None else []  # pain rules only
    findings = evaluate(_facts(report), history, rules, baseline=report.procedure.baseline_pain)
    fresh = [finding for finding in findings if finding.code not in known]
    report.findings = report.findings + [asdict(finding) for finding in fresh]
    report.full_clean(exclude=["patient", "procedure"])
    report.save()
    for finding in fresh:
        _act_on(finding, report, now=now)
    if "pain_now" in given:
        _feed_tier_inputs(report)
    return report
