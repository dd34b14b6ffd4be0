"""The patient page: the coordinator's home for one patient. Who they are and how to reach them, their
open alerts and the checkpoints to act on (with the actions the user's role in the patient's clinic
allows), every report's answers in words, the risk with its reasons, the pain chart and the timeline."""

import math
from typing import NamedTuple

from django.contrib import admin
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse

from patients import access
from patients.models import Checkpoint, CheckpointState, Patient, RiskAssessment, WorkItem, WorkKind

from .charts import PainPoint, pain_chart
from .dashboard import clinic_ids, outcome_inputs
from .forms import BOOLEAN_QUESTIONS, CheckInForm
from .models import Alert, AlertState, CheckIn, PainkillerUse, SymptomReport
from .rules import get_rules

WORDS = {True: "Yes", False: "No", "yes": "Yes", "no": "No", "unsure": "Not sure", "na": "Does not apply"}


class Answer(NamedTuple):
    question: str
    answer: str
    warning: bool = False  # a red flag answered yes


def answers_in_words(report: SymptomReport, rules) -> list[Answer]:
    """Every question `report` answered, in the words the patient saw, red flags answered yes marked.
    Shown on the patient page and on the report and alert pages of the admin (`render_answers`)."""
    fields = CheckInForm.base_fields
    skipped = set(report.unanswered or [])
    pairs = [
        Answer(flag.question, "Yes" if flag.id in report.red_flags else "No", flag.id in report.red_flags)
        for flag in rules.red_flags
        if flag.id in report.red_flags or flag.id not in skipped
    ]
    for name in ("pain_now", "pain_average_24h"):
        if getattr(report, name) is not None:
            pairs.append(Answer(str(fields[name].label), f"{getattr(report, name)} out of 10"))
    if report.painkillers:
        pairs.append(Answer(str(fields["painkillers"].label), report.get_painkillers_display()))
    for name in BOOLEAN_QUESTIONS:
        if getattr(report, name) is not None:
            pairs.append(Answer(str(fields[name].label), WORDS[getattr(report, name)]))
    for opinion in rules.second_opinion:
        if opinion.id in (report.second_opinion or {}):
            answer = report.second_opinion[opinion.id]
            pairs.append(Answer(opinion.question, WORDS.get(answer, answer)))
    return pairs


def changes_in_words(report: SymptomReport, rules) -> list[tuple[str, str, str]]:
    """(question, answer first sent, answer now) for each answer the patient changed on a later page."""
    labels = {name: str(field.label) for name, field in CheckInForm.base_fields.items()}
    labels |= {opinion.id: opinion.question for opinion in rules.second_opinion}
    return [
        (labels.get(change["question"], "Another question"), _said(change["first"]), _said(change["changed_to"]))
        for change in report.answer_changes
    ]


def _said(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(PainkillerUse(item).label) for item in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value} out of 10"
    return WORDS.get(value, str(value))


def render_answers(report: SymptomReport | None) -> str:
    """`report`'s answers in words as HTML (admin/alerts/answers.html), or a sentence saying there are none."""
    rules = get_rules(report.protocol_version) if report else None
    context = {
        "answers": answers_in_words(report, rules) if report else [],
        "changes": changes_in_words(report, rules) if report else [],
        "report": report,
    }
    return render_to_string("admin/alerts/answers.html", context)


def _act_forms(alerts: list, checkpoints: list, *, may_alerts: bool, may_record: bool) -> None:
    known = {}
    for alert in alerts:
        alert.can_act = may_alerts
    for checkpoint in checkpoints:
        checkpoint.can_act = may_record
        checkpoint.outcome_inputs = outcome_inputs(checkpoint, known) if may_record else []


def patient_overview(request, pk: int):
    """Everything about one patient a coordinator needs, and what they can do about it now."""
    patient = get_object_or_404(
        Patient.objects.filter(clinic_id__in=clinic_ids(request.user)).select_related("clinic"), pk=pk
    )
    procedures = list(patient.procedures.prefetch_related("levels").order_by("performed_on"))
    checkpoints = list(Checkpoint.objects.filter(procedure__patient=patient).order_by("target_date"))
    reports = list(SymptomReport.objects.filter(patient=patient).order_by("reported_at"))
    alerts = list(Alert.objects.filter(patient=patient).order_by("first_seen_at"))
    checkins = list(CheckIn.objects.filter(patient=patient).order_by("created_at"))
    assessments = list(RiskAssessment.objects.filter(procedure__patient=patient, is_current=True))
    call = WorkItem.objects.filter(patient=patient, kind=WorkKind.CALL).first()
    live = [alert for alert in alerts if alert.state != AlertState.RESOLVED]
    actionable = [cp for cp in checkpoints if cp.state in (CheckpointState.DUE, CheckpointState.MISSED)]
    upcoming = [cp for cp in checkpoints if cp.state == CheckpointState.SCHEDULED][:5]
    _act_forms(
        live,
        actionable + upcoming,
        may_alerts=access.can(request.user, access.Action.ACT_ON_ALERTS, patient.clinic_id),
        may_record=access.can(request.user, access.Action.RECORD, patient.clinic_id),
    )
    for report in reports:
        report.answers = answers_in_words(report, get_rules(report.protocol_version))
    latest = procedures[-1] if procedures else None
    context = {
        **admin.site.each_context(request),
        "title": f"{patient.family_name}, {patient.given_name}",
        "patient": patient,
        "clinic": patient.clinic,
        "procedures": procedures,
        "assessments": assessments,
        "live_alerts": live,
        "actionable": actionable,
        "upcoming": upcoming,
        "reports": [report for report in reversed(reports)][:10],
        "call": call,
        "open_calls": [checkin for checkin in checkins if checkin.state == "call_needed"],
        "timeline": _timeline(procedures, checkpoints, reports, alerts, checkins),
        "chart": _pain_chart(patient, latest, reports, checkpoints) if latest else "",
        "here": request.get_full_path(),
        "opts": Patient._meta,
    }
    return TemplateResponse(request, "admin/dashboard/patient.html", context)


def _timeline(procedures, checkpoints, reports, alerts, checkins) -> list:
    return sorted(
        [(p.performed_on, "procedure", p) for p in procedures]
        + [(c.completed_at.date() if c.completed_at else c.target_date, "checkpoint", c) for c in checkpoints]
        + [(r.reported_at.date(), "report", r) for r in reports]
        + [(a.first_seen_at.date(), "alert", a) for a in alerts]
        + [(c.created_at.date(), "checkin", c) for c in checkins],
        key=lambda item: (item[0], item[1]),
    )


def _pain_chart(patient: Patient, procedure, reports: list, checkpoints: list) -> str:
    """The pain chart of `procedure`: its reports and the pain scores recorded at its checkpoints,
    against the baseline and the improvement the protocol expects."""
    rules = get_rules(procedure.protocol_version or patient.clinic.protocol_version).pain_not_improving
    baseline = procedure.baseline_pain
    target = None
    if baseline is not None:
        target = max(
            0,
            min(
                baseline - rules["min_improvement_points"],
                math.floor(baseline * (1 - rules["min_improvement_fraction"])),
            ),
        )
    points = [PainPoint(r.day, r.pain_now, r.get_source_display()) for r in reports if r.procedure_id == procedure.pk]
    points += [
        PainPoint((c.completed_at.date() - procedure.performed_on).days, c.pain_score, c.code)
        for c in checkpoints
        # A checkpoint answered by a check-in is already plotted as that report.
        if c.procedure_id == procedure.pk
        and c.pain_score is not None
        and c.completed_at
        and not c.outcome_notes.startswith("check-in report")
    ]
    return pain_chart(points, baseline=baseline, moderate=rules["pain_at_least"], improvement=target)
