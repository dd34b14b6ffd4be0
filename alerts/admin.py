from collections import Counter

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from patients import access
from patients.admin import ClinicScopedAdmin, ServiceActionsAdmin
from patients.admin_identity import PatientIdentityColumns
from patients.admin_scoping import ReadOnlyAdmin, RecordAdmin
from patients.models import Patient, Procedure

from . import reports, reviews
from .forms import (
    AcknowledgeAlertForm,
    ClinicianFindingForm,
    CompleteReviewForm,
    LogCallForm,
    PhoneReportForm,
    ReopenAlertForm,
    ResolveAlertForm,
)
from .models import (
    Alert,
    AlertEvent,
    CheckIn,
    CheckInState,
    Delivery,
    DigestRun,
    EscalationPolicy,
    ResolutionReason,
    ReviewTask,
    SymptomReport,
    WebhookEndpoint,
)
from .patient_page import render_answers
from .recipients import managed_chain_gaps
from .rules import get_rules
from .worklist import search_patients

# --- Answers ------------------------------------------------------------------------------------


class AnswersInWords:
    """A report's answers shown in words, red flags answered yes marked, in the place of the raw
    answer fields (codes, JSON): the same list as the patient page (`alerts.patient_page`)."""

    answer_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        names = list(super().get_readonly_fields(request, obj))
        at = min((names.index(name) for name in self.answer_fields if name in names), default=len(names))
        kept = [name for name in names if name not in self.answer_fields]
        return [*kept[:at], "answers_in_words", *kept[at:]]

    def get_exclude(self, request, obj=None):
        return [*(super().get_exclude(request, obj) or []), *self.answer_fields]

    def report_of(self, obj) -> SymptomReport | None:
        return obj

    @admin.display(description="Answers")
    def answers_in_words(self, obj):
        return render_answers(self.report_of(obj))


# --- Alerts -------------------------------------------------------------------------------------


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "by", "note", "data"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(PatientIdentityColumns, ServiceActionsAdmin, AnswersInWords, ReadOnlyAdmin):
    change_action = access.Action.ACT_ON_ALERTS
    answer_fields = ("answers",)
    change_form_template = "admin/service_actions_change_form.html"
    list_display = ["id", "code", "tier", "state", "patient", "count", "first_seen_at", "last_seen_at", "level"]
    list_filter = ["state", "tier", "code", "clinic"]
    list_select_related = ["patient"]
    search_fields = ["=patient__mrn", "patient__family_name", "patient__given_name", "=code"]
    inlines = [AlertEventInline]
    actions_forms = {
        "acknowledge": (AcknowledgeAlertForm, "Acknowledge", "The alert was acknowledged."),
        "resolve": (ResolveAlertForm, "Resolve", "The alert was resolved."),
        "reopen": (ReopenAlertForm, "Reopen", "The alert was reopened and its escalation started again."),
    }

    def action_view(self, request, pk, action):
        if action != "resolve" or request.method != "POST" or request.POST.get("confirmed"):
            return super().action_view(request, pk, action)
        return self.resolve_confirmation(request, pk)

    def resolve_confirmation(self, request, pk):
        """A second look before resolving (HAZ-47): a valid first POST only shows the alert, its red
        flags and the patient, with the choices made; the page's button sends them again, confirmed."""
        alert = get_object_or_404(self.get_queryset(request).select_related("patient", "last_report"), pk=pk)
        if not self.has_change_permission(request, alert):
            return redirect("admin:index")
        form = ResolveAlertForm(request.POST, instance=alert, user=request.user)
        if not form.is_valid():
            return super().action_view(request, pk, "resolve")
        rules = get_rules(alert.protocol_version)
        flags = [(flag.id, flag.question) for flag in rules.red_flags if flag.id in alert.last_report.red_flags]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Resolve this alert? {alert}",
            "alert": alert,
            "patient": alert.patient,
            "red_flags": flags,
            "reason_label": dict(ResolutionReason.choices)[form.cleaned_data["reason"]],
            "form": form,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/alerts/alert/resolve_confirm.html", context)

    def report_of(self, obj):
        return obj.last_report

    @admin.display(description="Answers in the latest report")
    def answers_in_words(self, obj):
        return super().answers_in_words(obj)


# --- Reports ------------------------------------------------------------------------------------


@admin.register(SymptomReport)
class SymptomReportAdmin(PatientIdentityColumns, AnswersInWords, ReadOnlyAdmin):
    """Reports are read here; a coordinator enters one from a phone call with "Enter a phone report"."""

    answer_fields = ("red_flags", "second_opinion", "unanswered", "answer_changes", *reports.ANSWERS)
    clinic_path = "patient__clinic"
    list_display = ["id", "patient", "day", "pain_now", "red_flags", "source", "reported_at"]
    list_filter = ["source", "patient__clinic"]
    list_select_related = ["patient"]
    search_fields = ["=patient__mrn", "patient__family_name", "patient__given_name"]
    change_list_template = "admin/alerts/symptomreport/change_list.html"

    def get_urls(self):
        return [
            path("phone/", self.admin_site.admin_view(self.phone_report_view), name="alerts_symptomreport_phone")
        ] + super().get_urls()

    def phone_report_view(self, request):
        """The phone entry: the patient is picked by a name or MRN search (or comes with the call task,
        `?checkin=`), and a banner names them before anything is saved."""
        if not access.clinics_for(request.user, access.Action.RECORD):
            raise PermissionDenied
        patients = self._patients(request)
        checkin = self._call_task(request, patients)
        searching = "find" in request.POST
        procedures = Procedure.objects.filter(patient__in=patients).select_related("patient__clinic")
        matches = None
        if searching:
            matches = list(procedures.filter(search_patients(request.POST.get("find_q", ""), "patient__"))[:20])
        selected = "" if searching else str(request.POST.get("procedure") or request.GET.get("procedure") or "")
        if checkin and not selected:
            selected = str(checkin.procedure_id)
        procedure = procedures.filter(pk=selected).first() if selected.isdigit() else None
        if matches is not None and len(matches) == 1:
            procedure = matches[0]
        form, report = None, None
        if procedure is not None:  # the answers only once a patient is chosen, and only for that patient
            mine = procedures.filter(patient=procedure.patient_id)
            form, report = self._phone_form(request, mine, procedure, checkin, bound=not searching)
        if report is not None:
            messages.success(request, f"The phone report was saved. {raised_sentence(report.findings)}")
            _warn_of_notes(request, report, form)
            return redirect(reverse("admin:alerts_symptomreport_change", args=[report.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Enter a phone report",
            "form": form,
            "opts": self.opts,
            "chosen": procedure.patient if procedure else None,
            "checkin": checkin,
            "find_q": request.POST.get("find_q", "") if searching else "",
            "matches": matches,
        }
        return TemplateResponse(request, "admin/alerts/symptomreport/phone.html", context)

    def _call_task(self, request, patients) -> CheckIn | None:
        """The call task the coordinator came from (its check-in id), if it still needs a call."""
        raw = str(request.POST.get("checkin") or request.GET.get("checkin") or "")
        if not raw.isdigit():
            return None
        return CheckIn.objects.filter(pk=raw, patient__in=patients, state=CheckInState.CALL_NEEDED).first()

    def _phone_form(self, request, procedures, procedure, checkin, *, bound: bool):
        """The form, and the report it saved (None until a valid form is submitted)."""
        rules = get_rules((procedure.protocol_version if procedure else "") or _latest_rules_version())
        # The call's time is what the coordinator's clock said: the patient's (else the clinic's) zone.
        zone = procedure.patient.time_zone if procedure else self._home_zone(request)
        with timezone.override(zone):
            form = PhoneReportForm(
                request.POST if request.method == "POST" and bound else None,
                rules=rules,
                procedures=procedures,
                initial={"reported_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "procedure": procedure},
            )
            form.fields["reported_at"].help_text = f"Local time, {zone}."
            if not form.is_bound:
                return form, None
            arguments = form.report_arguments() if form.is_valid() else form.kept_despite_errors()  # HAZ-41
            if arguments is None:
                return form, None
        chosen = form.cleaned_data["procedure"]
        try:
            report = reports.submit_report(
                procedure=chosen,
                source="phone",
                entered_by=request.user,
                reported_at=form.cleaned_data["reported_at"],
                checkin=checkin if checkin and checkin.procedure_id == chosen.pk else None,
                **arguments,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return form, None
        return form, report

    def _home_zone(self, request) -> str:
        membership = request.user.clinic_memberships.select_related("clinic").first()
        return membership.clinic.time_zone if membership else timezone.get_current_timezone_name()

    def _patients(self, request):
        return access.scoped(Patient.objects.all(), request.user, access.Action.RECORD)


def _warn_of_notes(request, report, form) -> None:
    """What the coordinator must know about a saved phone report: answers it could not take (HAZ-41),
    and a patient out of follow-up whose report was still taken (HAZ-43)."""
    for note in report.notes:
        if note["code"] == "dropped_answer":
            label = form.fields[note["field"]].label if note["field"] in form.fields else note["field"]
            messages.warning(request, f"Not saved, could not be read: {label} ({note['reason']}) Ask again.")
        elif note["code"] == "patient_not_active":
            alerted = any(finding["kind"] == "alert" for finding in report.findings)
            words = "its red flags were alerted" if alerted else "nothing was alerted"
            messages.warning(
                request, f"This patient's follow-up is {note['status']}: the report was still taken and {words}."
            )


RAISED = {"alert": ("alert", "alerts"), "review": ("review task", "review tasks"), "checkin": ("check-in", "check-ins")}


def raised_sentence(findings: list[dict]) -> str:
    """What a saved report raised, in words, e.g. "It raised 1 urgent alert and 1 review task." """
    counts = Counter(
        (finding.get("tier", "") if finding.get("kind") == "alert" else "", finding.get("kind", ""))
        for finding in findings
    )
    if not counts:
        return "It raised no alert or task."
    parts = []
    for (tier, kind), count in counts.items():
        words = RAISED.get(kind, ("follow-up task", "follow-up tasks"))[count != 1]
        parts.append(f"{count} {tier} {words}".replace("  ", " "))
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"It raised {listed}."


def _latest_rules_version() -> str:
    from patients.protocol import latest_version

    return latest_version()


# --- Review tasks and check-ins -----------------------------------------------------------------


@admin.register(ReviewTask)
class ReviewTaskAdmin(PatientIdentityColumns, ServiceActionsAdmin, ReadOnlyAdmin):
    change_action = access.Action.ACT_ON_ALERTS
    change_form_template = "admin/service_actions_change_form.html"
    list_display = ["id", "code", "patient", "state", "due_at", "action", "detail"]
    list_filter = ["state", "code", "clinic"]
    list_select_related = ["patient"]
    search_fields = ["=patient__mrn", "patient__family_name", "patient__given_name"]
    actions_forms = {"complete": (CompleteReviewForm, "Mark reviewed", "The review was marked done.")}
    change_list_template = "admin/alerts/reviewtask/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.clinician_finding_view)
        return [path("record/", view, name="alerts_reviewtask_record")] + super().get_urls()

    def clinician_finding_view(self, request):
        """SO-3 and the revision considerations (spec §1), entered by staff who may act on the
        patient's clinic's alerts; each opens its review task (and a revision, the bone-health one)."""
        patients = access.scoped(Patient.objects.all(), request.user, access.Action.ACT_ON_ALERTS)
        if not patients.exists():
            raise PermissionDenied
        rules = get_rules(_latest_rules_version())
        form = ClinicianFindingForm(request.POST or None, patients=patients, rules=rules)
        if request.method == "POST" and form.is_valid():
            try:
                tasks = reviews.record_clinician_finding(by=request.user, **form.cleaned_data)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                opened = "One review task was opened." if len(tasks) == 1 else f"{len(tasks)} review tasks were opened."
                messages.success(request, f"{opened} It is on the worklist.")
                return redirect(reverse("admin:alerts_reviewtask_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Record a clinician finding",
            "form": form,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/service_action.html", context)


@admin.register(CheckIn)
class CheckInAdmin(PatientIdentityColumns, ServiceActionsAdmin, ReadOnlyAdmin):
    change_action = access.Action.ACT_ON_ALERTS
    change_form_template = "admin/service_actions_change_form.html"
    clinic_path = "patient__clinic"
    list_display = ["id", "patient", "reason", "state", "invitations_sent", "next_action_at", "answered_at"]
    list_filter = ["state", "reason", "patient__clinic"]
    list_select_related = ["patient"]
    search_fields = ["=patient__mrn", "patient__family_name", "patient__given_name"]
    actions_forms = {"log_call": (LogCallForm, "Log phone call", "The call was logged.")}


# --- Configuration and outbox -------------------------------------------------------------------


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(ClinicScopedAdmin):
    change_action = access.Action.MANAGE_CLINIC
    list_display = ["clinic", "tier", "steps", "source"]
    list_filter = ["clinic", "tier"]

    def changelist_view(self, request, extra_context=None):
        """Warns the clinic admin of every step that would page no one (HAZ-44), for the clinic's own
        policies and the protocol's defaults alike."""
        for clinic, gaps in managed_chain_gaps(request.user):
            for gap in gaps:
                messages.warning(request, f"{clinic.name}: {gap}")
        return super().changelist_view(request, extra_context)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ClinicScopedAdmin):
    # Endpoint URLs and secrets are the clinic admin's business only.
    view_action = change_action = access.Action.MANAGE_CLINIC
    list_display = ["id", "clinic", "url", "active", "disabled_reason", "events"]
    list_filter = ["clinic", "active"]
    # Why sending stopped (the receiver answered 410 Gone); cleared when the endpoint is turned on again.
    readonly_fields = ["disabled_at", "disabled_reason", "created_at"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """The outbox: what was sent, what is pending, and what failed for good."""

    list_display = ["id", "kind", "channel", "state", "attempts", "next_attempt_at", "sent_at", "last_error"]
    list_filter = ["state", "kind", "channel", "clinic"]
    list_select_related = ["clinic"]
    change_action = access.Action.OUTBOX
    date_hierarchy = "created_at"


@admin.register(AlertEvent)
class AlertEventAdmin(RecordAdmin):
    """Every alert transition, with who (staff user or API client), when, through what and why."""

    clinic_path = "alert__clinic"
    list_display = ["at", "kind", "alert", "by", "api_client", "source", "note"]
    list_filter = ["kind", "source"]
    list_select_related = ["alert", "by", "api_client"]
    date_hierarchy = "at"


@admin.register(DigestRun)
class DigestRunAdmin(ReadOnlyAdmin):
    list_display = ["clinic", "local_date", "missed_count", "until"]
    list_filter = ["clinic"]
