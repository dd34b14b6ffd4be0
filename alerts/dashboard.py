"""The coordinator's worklist (the admin's home page) and its actions.

Every list is narrowed to the staff member's clinics and runs a fixed number of queries (see
`alerts.worklist`); every row the user may act on carries the form of the action that clears it, which
calls the same service as the API. After an action the user comes back to the same filters and page.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from patients import access
from patients.forms import CompleteCheckpointForm, ConfirmTierDropForm, RescheduleCheckpointForm
from patients.models import Audience, Checkpoint, Clinic, Patient, TierDropReview
from patients.protocol import get_protocol
from patients.services import WORK_ACTION, assign_work

from .forms import (
    AcknowledgeAlertForm,
    CallOutcomeForm,
    CompleteReviewForm,
    DismissDeliveryForm,
    LogCallForm,
    RetryDeliveryForm,
)
from .models import Alert, CheckIn, Delivery, ReviewTask, Tier
from .recipients import managed_chain_gaps
from .worklist import DUE_CHOICES, Filters, Worklist

SEARCH_KEY = "kf_worklist_search"  # the name or MRN searched for: kept in the session, never in a URL


class WorklistAcknowledgeForm(AcknowledgeAlertForm):
    via = "worklist"


# kind → (model, what the user must be allowed in the row's clinic, {action: (form, what was done)})
ACTIONS = {
    "alert": (
        Alert,
        access.Action.ACT_ON_ALERTS,
        {"acknowledge": (WorklistAcknowledgeForm, "The alert was acknowledged.")},
    ),
    "checkpoint": (
        Checkpoint,
        access.Action.RECORD,
        {
            "complete": (CompleteCheckpointForm, "The checkpoint was completed."),
            "reschedule": (RescheduleCheckpointForm, "The checkpoint was given a new date."),
        },
    ),
    "checkin": (CheckIn, access.Action.ACT_ON_ALERTS, {"log_call": (LogCallForm, "The call was logged.")}),
    "call": (Patient, access.Action.ACT_ON_ALERTS, {"log": (CallOutcomeForm, "The call was logged.")}),
    "delivery": (
        Delivery,
        access.Action.OUTBOX,
        {
            "retry": (RetryDeliveryForm, "The message will be sent again."),
            "dismiss": (DismissDeliveryForm, "The failed message was marked as dealt with."),
        },
    ),
    "review": (
        ReviewTask,
        access.Action.ACT_ON_ALERTS,
        {"complete": (CompleteReviewForm, "The review was marked done.")},
    ),
    "tier_drop": (
        TierDropReview,
        access.Action.CONFIRM_TIER,
        {"confirm": (ConfirmTierDropForm, "The lower tier was confirmed; intensified follow-up was cancelled.")},
    ),
}
CLINIC_PATH = {
    "alert": "clinic_id",
    "checkpoint": "procedure__patient__clinic_id",
    "checkin": "patient__clinic_id",
    "call": "clinic_id",
    "delivery": "clinic_id",
    "review": "clinic_id",
    "tier_drop": "clinic_id",
}


def clinic_ids(user, action: access.Action = access.Action.VIEW) -> list[int]:
    return list(access.clinics_for(user, action))


def _complete_form(checkpoint) -> CompleteCheckpointForm:
    """The completion form with the outcome fields the protocol's [[outcomes]] give this checkpoint."""
    form = CompleteCheckpointForm(instance=None, user=None, auto_id=f"cp{checkpoint.pk}-complete-%s")
    protocol = get_protocol(checkpoint.protocol_version)
    for name in protocol.outcome_field_names:
        if name not in protocol.outcome_fields(checkpoint.code):
            del form.fields[name]
    return form


def _input_kind(field) -> str:
    widget = type(field.widget).__name__
    return {
        "Textarea": "textarea",
        "DateInput": "date",
        "NumberInput": "number",
        "NullBooleanSelect": "yesno",
    }.get(widget, "text")


def outcome_inputs(checkpoint, known: dict) -> list[dict]:
    """The completion form's fields for `checkpoint` as plain inputs (name, label, kind, limits): a page
    of hundreds of checkpoints is rendered from these in a fraction of the time bound forms take."""
    key = (checkpoint.protocol_version, checkpoint.code)
    if key not in known:
        fields = _complete_form(checkpoint).fields
        known[key] = [
            {
                "name": name,
                "label": field.label,
                "kind": _input_kind(field),
                "min": getattr(field, "min_value", None),
                "max": getattr(field, "max_value", None),
                "step": "0.1" if getattr(field, "decimal_places", None) else "1",
            }
            for name, field in fields.items()
        ]
    return known[key]


def _add_forms(sections) -> None:
    known = {}
    for patient in sections["checkpoints"].rows:
        for checkpoint in patient.items:
            checkpoint.outcome_inputs = outcome_inputs(checkpoint, known)
    for patient in sections["calls"].rows:
        patient.call_form = CallOutcomeForm(instance=None, user=None, auto_id=f"call{patient.pk}-%s")


def worklist(request, *, site):
    """Who needs the coordinator now, section by section: open alerts (EMERGENCY first), acknowledged
    alerts not yet resolved, due and missed checkpoints and phone calls (one row per patient), clinician
    reviews, incomplete risk profiles, failed deliveries; each filtered, searched, sorted and paged."""
    if request.method == "POST":  # the search box: the words go to the session, the filters stay in the URL
        request.session[SEARCH_KEY] = request.POST.get("q", "").strip()[:100]
        return redirect(_back(request, request.POST.get("next")))
    visible = access.clinics_for(request.user, access.Action.VIEW)
    filters = Filters.read(request.GET, q=request.session.get(SEARCH_KEY, ""), visible=visible)
    sections = Worklist(request.user, filters, request.GET, now=timezone.now()).sections()
    _add_forms(sections)
    context = {
        **site.each_context(request),
        "title": "Worklist",
        "sections": {name: section.rows for name, section in sections.items()},
        "pages": sections,
        "filters": filters,
        "choices": {
            "tier": Tier.choices,
            "kind": Audience.choices,
            "due": DUE_CHOICES,
            "clinics": Clinic.objects.filter(id__in=visible).order_by("name"),
        },
        "multi_clinic": len(visible) > 1,
        "chain_gaps": managed_chain_gaps(request.user),
        "here": request.get_full_path(),
        "query": request.GET,
    }
    return TemplateResponse(request, "admin/dashboard/worklist.html", context)


def _back(request, target: str | None, anchor: str = "") -> str:
    """Back to the worklist page the user came from (its filters and page), else the worklist."""
    home = reverse("admin:index")
    if (
        target
        and target.startswith(home)
        and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    ):
        return target.split("#")[0] + anchor
    return home + anchor


def _errors_sentence(form) -> str:
    problems = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields and form.fields[name].label else ""
        text = " ".join(errors)
        problems.append(f"{label}: {text}" if label else text)
    return " ".join(problem if problem.endswith(".") else f"{problem}." for problem in problems)


def _acted_on(request, kind: str, pk: int):
    """The row `kind` #`pk` if the user may act on it in its clinic; 404 if they cannot see it."""
    model, needed, _ = ACTIONS[kind]
    obj = get_object_or_404(model.objects.filter(**{f"{CLINIC_PATH[kind]}__in": clinic_ids(request.user)}), pk=pk)
    if not access.can(request.user, needed, access.clinic_id_of(obj, CLINIC_PATH[kind].removesuffix("_id"))):
        raise PermissionDenied  # visible (e.g. an auditor's clinic) but not this user's to act on
    return obj


def _zone_of(obj) -> str:
    patient = getattr(obj, "patient", None) or (obj if isinstance(obj, Patient) else None)
    if patient is None and isinstance(obj, Checkpoint):
        patient = obj.procedure.patient
    clinic = patient.clinic if patient is not None else getattr(obj, "clinic", None)
    return clinic.time_zone if clinic is not None else timezone.get_current_timezone_name()


@require_POST
def act(request, kind: str, pk: int, action: str):
    if kind not in ACTIONS or action not in ACTIONS[kind][2]:
        raise PermissionDenied
    obj = _acted_on(request, kind, pk)
    form_class, done = ACTIONS[kind][2][action]
    with timezone.override(_zone_of(obj)):  # dates and times typed in are the clinic's
        form = form_class(request.POST, instance=obj, user=request.user)
        saved = form.is_valid() and form.save()
    if saved:
        messages.success(request, done)
    else:
        messages.error(request, f"Nothing was changed. {_errors_sentence(form)}")
    return redirect(_back(request, request.POST.get("next"), f"#{kind}-{pk}"))


@require_POST
def assign(request, kind: str, pk: int):
    """Gives patient #`pk`'s work of `kind` to a staff member of the patient's clinic (or to nobody)."""
    if kind not in WORK_ACTION:
        raise PermissionDenied
    patient = get_object_or_404(Patient.objects.filter(clinic_id__in=clinic_ids(request.user)), pk=pk)
    if not access.can(request.user, WORK_ACTION[kind], patient.clinic_id):
        raise PermissionDenied
    chosen = request.POST.get("to", "")
    to = get_user_model().objects.filter(pk=chosen).first() if chosen.isdigit() else None
    try:
        assign_work(patient=patient, kind=kind, to=to, by=request.user)
    except ValidationError as exc:
        messages.error(request, f"Nothing was changed. {' '.join(exc.messages)}")
    else:
        who = (to.get_full_name() or to.username) if to else "nobody"
        messages.success(request, f"The work was given to {who}.")
    return redirect(_back(request, request.POST.get("next"), f"#{kind}-row-{pk}"))


BULK = {
    # kind → (model, clinic path, needed action, form, the sentence once done: for one row, for n rows)
    "call": (
        Patient,
        "clinic_id",
        access.Action.ACT_ON_ALERTS,
        CallOutcomeForm,
        ("The call was logged for one patient.", "The call was logged for {n} patients."),
    ),
    "checkpoint": (
        Checkpoint,
        "procedure__patient__clinic_id",
        access.Action.RECORD,
        RescheduleCheckpointForm,
        ("One checkpoint was given the new date.", "{n} checkpoints were given the new date."),
    ),
}


@require_POST
def bulk(request, kind: str):
    """The same action on every selected row the user may act on: log one call outcome for several
    patients, or give several checkpoints one new date."""
    if kind not in BULK:
        raise PermissionDenied
    model, path, needed, form_class, done = BULK[kind]
    ids = [int(pk) for pk in request.POST.getlist("selected") if pk.isdigit()]
    rows = list(model.objects.filter(pk__in=ids, **{f"{path}__in": clinic_ids(request.user, needed)}))
    if not rows:
        messages.error(request, "Nothing was changed. Select at least one row you may act on.")
        return redirect(_back(request, request.POST.get("next")))
    failed = 0
    for row in rows:
        with timezone.override(_zone_of(row)):
            form = form_class(request.POST, instance=row, user=request.user)
            if not (form.is_valid() and form.save()):
                failed += 1
                problem = _errors_sentence(form)
    if failed:
        messages.error(request, f"{failed} of {len(rows)} rows could not be changed. {problem}")
    if len(rows) > failed:
        changed = len(rows) - failed
        messages.success(request, done[0] if changed == 1 else done[1].format(n=changed))
    return redirect(_back(request, request.POST.get("next")))
