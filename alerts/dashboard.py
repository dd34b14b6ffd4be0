"""The coordinator's worklist (the admin's home page) and the patient overview.

Every list is narrowed to the staff member's clinics and runs a fixed number of queries; every row
carries the form of the action that clears it, which calls the same service as the API.
"""

import math
from operator import attrgetter

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Q, Value, When
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from patients import access
from patients.forms import CompleteCheckpointForm, ConfirmTierDropForm, RescheduleCheckpointForm
from patients.models import Checkpoint, CheckpointState, Patient, RiskAssessment, TierDropReview
from patients.protocol import get_protocol

from .charts import PainPoint, pain_chart
from .forms import (
    AcknowledgeAlertForm,
    CompleteReviewForm,
    DismissDeliveryForm,
    LogCallForm,
    RetryDeliveryForm,
)
from .models import Alert, AlertState, CheckIn, CheckInState, Delivery, DeliveryState, ReviewTask, SymptomReport
from .rules import get_rules

ROWS_PER_SECTION = 100
TIER_RANK = Case(
    When(tier="emergency", then=Value(3)),
    When(tier="urgent", then=Value(2)),
    default=Value(1),
    output_field=IntegerField(),
)


class WorklistAcknowledgeForm(AcknowledgeAlertForm):
    via = "worklist"


# kind → (model, what the user must be allowed in the row's clinic, {action: form})
ACTIONS = {
    "alert": (Alert, access.Action.ACT_ON_ALERTS, {"acknowledge": WorklistAcknowledgeForm}),
    "checkpoint": (
        Checkpoint,
        access.Action.RECORD,
        {"complete": CompleteCheckpointForm, "reschedule": RescheduleCheckpointForm},
    ),
    "checkin": (CheckIn, access.Action.ACT_ON_ALERTS, {"log_call": LogCallForm}),
    "delivery": (Delivery, access.Action.OUTBOX, {"retry": RetryDeliveryForm, "dismiss": DismissDeliveryForm}),
    "review": (ReviewTask, access.Action.ACT_ON_ALERTS, {"complete": CompleteReviewForm}),
    "tier_drop": (TierDropReview, access.Action.CONFIRM_TIER, {"confirm": ConfirmTierDropForm}),
}
CLINIC_PATH = {
    "alert": "clinic_id",
    "checkpoint": "procedure__patient__clinic_id",
    "checkin": "patient__clinic_id",
    "delivery": "clinic_id",
    "review": "clinic_id",
    "tier_drop": "clinic_id",
}


# worklist section → (the ACTIONS kind whose right its buttons need, the row's clinic)
SECTION_ACTIONS = {
    "alerts": ("alert", attrgetter("clinic_id")),
    "acknowledged": ("alert", attrgetter("clinic_id")),  # its button resolves the alert
    "checkpoints": ("checkpoint", attrgetter("procedure.patient.clinic_id")),
    "checkins": ("checkin", attrgetter("patient.clinic_id")),
    "reviews": ("review", attrgetter("clinic_id")),
    "incomplete": ("checkpoint", attrgetter("procedure.patient.clinic_id")),  # edit the patient's records
    "failures": ("delivery", attrgetter("clinic_id")),
}


def clinic_ids(user, action: access.Action = access.Action.VIEW) -> list[int]:
    return list(access.clinics_for(user, action))


def _sections(ids: list[int]) -> dict:
    actionable = [CheckpointState.DUE, CheckpointState.MISSED]
    return {
        "alerts": Alert.objects.filter(clinic_id__in=ids, state=AlertState.OPEN)
        .select_related("patient")
        .annotate(rank=TIER_RANK)
        .order_by("-rank", "first_seen_at")[:ROWS_PER_SECTION],
        # Acknowledged is not done: these stay on the list until resolved, the longest-waiting first.
        "acknowledged": Alert.objects.filter(clinic_id__in=ids, state=AlertState.ACKNOWLEDGED)
        .select_related("patient", "acknowledged_by")
        .order_by("acknowledged_at", "first_seen_at")[:ROWS_PER_SECTION],
        "checkpoints": Checkpoint.objects.filter(procedure__patient__clinic_id__in=ids)
        .filter(Q(state__in=actionable) | Q(needs_review=True, state=CheckpointState.SCHEDULED))
        .select_related("procedure__patient")
        .order_by("-priority", "closes_at")[:ROWS_PER_SECTION],
        "checkins": CheckIn.objects.filter(patient__clinic_id__in=ids, state=CheckInState.CALL_NEEDED)
        .select_related("patient")
        .order_by("updated_at")[:ROWS_PER_SECTION],
        "reviews": ReviewTask.objects.filter(clinic_id__in=ids, state=ReviewTask.State.OPEN)
        .select_related("patient")
        .order_by("due_at")[:ROWS_PER_SECTION],
        # A re-assessment that would lower a tier waits here for a clinician (spec v0.2 §2), oldest first.
        "tier_drops": TierDropReview.objects.filter(clinic_id__in=ids, state=TierDropReview.State.OPEN)
        .select_related("procedure__patient")
        .order_by("created_at")[:ROWS_PER_SECTION],
        "incomplete": RiskAssessment.objects.filter(is_current=True, procedure__patient__clinic_id__in=ids)
        .exclude(missing=[])
        .select_related("procedure__patient")
        .order_by("created_at")[:ROWS_PER_SECTION],
        "failures": Delivery.objects.filter(clinic_id__in=ids, state=DeliveryState.FAILED).order_by("-updated_at")[
            :ROWS_PER_SECTION
        ],
    }


def _complete_form(checkpoint) -> CompleteCheckpointForm:
    """The completion form with the outcome fields the protocol's [[outcomes]] give this checkpoint."""
    form = CompleteCheckpointForm(instance=None, user=None, auto_id=f"cp{checkpoint.pk}-complete-%s")
    protocol = get_protocol(checkpoint.protocol_version)
    for name in protocol.outcome_field_names:
        if name not in protocol.outcome_fields(checkpoint.code):
            del form.fields[name]
    return form


def worklist(request, *, site):
    """Who needs the coordinator now: open alerts (oldest EMERGENCY first), acknowledged alerts not
    yet resolved (oldest acknowledgement first), due and missed
    checkpoints, check-ins needing a call, clinician reviews, tier drops awaiting confirmation,
    incomplete risk profiles, failed deliveries."""
    sections = {name: list(rows) for name, rows in _sections(clinic_ids(request.user)).items()}
    _mark_actionable(sections, request.user)
    for checkpoint in (cp for cp in sections["checkpoints"] if cp.can_act):
        # Forms of their own per row, so that every field has a label bound to a unique id.
        checkpoint.complete_form = _complete_form(checkpoint)
        checkpoint.reschedule_form = RescheduleCheckpointForm(
            instance=None, user=None, auto_id=f"cp{checkpoint.pk}-reschedule-%s"
        )
    context = {
        **site.each_context(request),
        "title": "Worklist",
        "sections": sections,
        "limit": ROWS_PER_SECTION,
        "forms": {
            kind: {name: form_class(instance=None, user=None, auto_id=False) for name, form_class in actions.items()}
            for kind, (_, _, actions) in ACTIONS.items()
        },
    }
    return TemplateResponse(request, "admin/dashboard/worklist.html", context)


def _mark_actionable(sections: dict, user) -> None:
    """Set `can_act` on every row: may `user` press its buttons, by their role in the row's clinic?
    A row shown through a read-only role (an auditor's clinic) gets none. The clinics are asked once
    per kind of action, not per row."""
    allowed = {kind: access.clinics_for(user, needed) for kind, (_, needed, _) in ACTIONS.items()}
    for section, (kind, clinic_of) in SECTION_ACTIONS.items():
        for row in sections[section]:
            row.can_act = clinic_of(row) in allowed[kind]


@require_POST
def act(request, kind: str, pk: int, action: str):
    if kind not in ACTIONS or action not in ACTIONS[kind][2]:
        raise PermissionDenied
    model, needed, actions = ACTIONS[kind]
    obj = get_object_or_404(model.objects.filter(**{f"{CLINIC_PATH[kind]}__in": clinic_ids(request.user)}), pk=pk)
    if not access.can(request.user, needed, access.clinic_id_of(obj, CLINIC_PATH[kind].removesuffix("_id"))):
        raise PermissionDenied  # visible (e.g. an auditor's clinic) but not this user's to act on
    form = actions[action](request.POST, instance=obj, user=request.user)
    if form.is_valid() and form.save():
        messages.success(request, f"{obj}: {action.replace('_', ' ')} done.")
    else:
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        messages.error(request, f"{obj}: not done. {problems}")
    return redirect(reverse("admin:index") + f"#{kind}-{pk}")


def patient_overview(request, pk: int):
    """Timeline of procedure, checkpoints, check-ins, reports and alerts; the pain chart; the risk."""
    patient = get_object_or_404(Patient.objects.filter(clinic_id__in=clinic_ids(request.user)), pk=pk)
    procedures = list(patient.procedures.prefetch_related("levels").order_by("performed_on"))
    checkpoints = list(Checkpoint.objects.filter(procedure__patient=patient).order_by("target_date"))
    reports = list(SymptomReport.objects.filter(patient=patient).order_by("reported_at"))
    alerts = list(Alert.objects.filter(patient=patient).order_by("first_seen_at"))
    checkins = list(CheckIn.objects.filter(patient=patient).order_by("created_at"))
    assessments = list(RiskAssessment.objects.filter(procedure__patient=patient, is_current=True))
    latest = procedures[-1] if procedures else None
    timeline = sorted(
        [(p.performed_on, "procedure", p) for p in procedures]
        + [(c.completed_at.date() if c.completed_at else c.target_date, "checkpoint", c) for c in checkpoints]
        + [(r.reported_at.date(), "report", r) for r in reports]
        + [(a.first_seen_at.date(), "alert", a) for a in alerts]
        + [(c.created_at.date(), "checkin", c) for c in checkins],
        key=lambda item: (item[0], item[1]),
    )
    context = {
        **admin.site.each_context(request),
        "title": f"{patient.family_name}, {patient.given_name} ({patient.mrn})",
        "patient": patient,
        "procedures": procedures,
        "assessments": assessments,
        "timeline": timeline,
        "chart": _pain_chart(patient, latest, reports, checkpoints) if latest else "",
        "opts": Patient._meta,
    }
    return TemplateResponse(request, "admin/dashboard/patient.html", context)


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
