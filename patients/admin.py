from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from . import access, services
from .admin_identity import PatientIdentityColumns
from .admin_scoping import ClinicScopedAdmin, ParentScopedInline, ScopedClinicFilter, WritableRowActions
from .forms import BookAppointmentForm, CancelCheckpointForm, CompleteCheckpointForm, RescheduleCheckpointForm
from .models import (
    ApiClient,
    Checkpoint,
    CheckpointEvent,
    Clinic,
    ClinicHoliday,
    ClinicMembership,
    Patient,
    Procedure,
    RiskAssessment,
    RiskTier,
    TierDropReview,
    TreatedLevel,
)
from .roles import sync_staff_groups


def _form_values(form) -> dict:
    """The model field values the admin's form put on its (unsaved) instance."""
    return {name: getattr(form.instance, name) for name in form.cleaned_data}


def _take_identity(obj, saved) -> None:
    """The admin's own unsaved instance, which its inline formsets already point at, becomes the
    row a service saved, so that the admin's log entry and redirect name that row."""
    for field in obj._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding, obj._state.db = False, saved._state.db


class ClinicMembershipInline(ParentScopedInline, admin.TabularInline):
    """A clinic's staff, edited on the clinic's page: only by a clinic admin of THAT clinic, so nobody
    grants a role in a clinic they do not manage (themselves included)."""

    model = ClinicMembership
    extra = 0
    autocomplete_fields = ["user"]


class ClinicHolidayInline(ParentScopedInline, admin.TabularInline):
    """Days the clinic's team does not work; every response promise to a patient skips them. Part of
    the clinic's settings: whoever may change the clinic (`access.MANAGE_CLINIC` in THAT clinic) edits
    them, and whoever may view it sees them; no permission of their own."""

    model = ClinicHoliday
    extra = 0

    def has_view_permission(self, request, obj=None):
        return self.admin_site._registry[Clinic].has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._parent_writable(request, obj) and obj is not None

    def has_change_permission(self, request, obj=None):
        return self._parent_writable(request, obj) and obj is not None

    def has_delete_permission(self, request, obj=None):
        return self._parent_writable(request, obj) and obj is not None


@admin.register(Clinic)
class ClinicAdmin(ClinicScopedAdmin):
    clinic_path = ""
    change_action = access.Action.MANAGE_CLINIC
    list_display = ["name", "slug", "time_zone", "phone", "emergency_number"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ClinicMembershipInline, ClinicHolidayInline]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for membership in form.instance.memberships.select_related("user"):
            sync_staff_groups(membership.user)


class ProcedureInline(ParentScopedInline, admin.TabularInline):
    """A patient's procedures, read-only: one is recorded (with its levels) and changed on its own
    page, where the risk and the schedule follow through the services."""

    model = Procedure
    extra = 0
    fields = ["kind", "performed_on", "fracture_diagnosed_on", "baseline_pain"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class RiskTierFilter(admin.SimpleListFilter):
    title = "risk tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return RiskTier.choices

    def queryset(self, request, queryset):
        if self.value() in RiskTier.values:
            return queryset.filter(
                procedures__risk_assessments__is_current=True, procedures__risk_assessments__tier=self.value()
            ).distinct()
        return queryset


@admin.register(TierDropReview)
class TierDropReviewAdmin(ClinicScopedAdmin):
    """Re-assessments that would lower a tier, held for a clinician; confirmed on the worklist."""

    list_display = ["__str__", "procedure", "tier_from", "tier_to", "state", "created_at", "decided_by"]
    list_filter = ["state", "clinic"]
    list_select_related = ["procedure", "decided_by"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in TierDropReview._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Patient)
class PatientAdmin(ClinicScopedAdmin):
    list_display = [
        "family_name",
        "given_name",
        "mrn",
        "birth_date",
        "phone",
        "clinic",
        "status",
        "email_consent",
        "overview",
    ]
    list_filter = ["clinic", RiskTierFilter, "status", "email_consent"]
    list_select_related = ["clinic"]
    search_fields = ["=mrn", "family_name", "given_name"]
    inlines = [ProcedureInline]
    readonly_fields = ["dxa_history"]

    @admin.display(description="Overview")
    def overview(self, obj):
        from django.utils.html import format_html

        return format_html('<a href="{}">Timeline and pain</a>', reverse("admin:patient-overview", args=[obj.pk]))

    @admin.display(description="DXA history")
    def dxa_history(self, obj):
        """Every DXA of the patient (spec §2), newest first; the T-score above is the most recent one's."""
        from django.utils.html import format_html_join

        rows = obj.dxa_results.all() if obj.pk else []
        return (
            format_html_join(
                "",
                "<div>{}: lowest T-score {} {} ({})</div>",
                ((r.measured_on or "undated", r.lowest_t_score, r.sites, r.source) for r in rows),
            )
            or "none recorded"
        )

    def save_model(self, request, obj, form, change):
        if change:
            services.update_patient(patient=obj, reason="patient changed in the admin")
        else:
            _take_identity(obj, services.register_patient(**_form_values(form)))

    fieldsets = [
        (None, {"fields": ["clinic", "mrn", "given_name", "family_name", "birth_date", "sex", "status"]}),
        ("Contact", {"fields": ["email", "phone", "language", "time_zone", "email_consent"]}),
        ("Care team", {"fields": ["responsible_clinician"]}),
        (
            "Risk factors (spec §2)",
            {
                "fields": [
                    "bmd_lowest_t_score",
                    "dxa_date",
                    "dxa_history",
                    "regular_outdoor_activity",
                    "on_osteoporosis_med",
                    "osteoporosis_drug",
                    "osteoporosis_med_started_on",
                    "bmi",
                    "prior_vertebral_fractures",
                ]
            },
        ),
    ]


class TreatedLevelInline(ParentScopedInline, admin.TabularInline):
    model = TreatedLevel
    extra = 1
    min_num = 1
    validate_min = True


class RiskAssessmentInline(admin.TabularInline):
    model = RiskAssessment
    extra = 0
    can_delete = False
    fields = [
        "created_at",
        "tier",
        "pain_points",
        "fracture_points",
        "factors",
        "missing",
        "change_reason",
        "is_current",
    ]
    readonly_fields = fields
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None):
        return False


class CheckpointInline(admin.TabularInline):
    model = Checkpoint
    extra = 0
    can_delete = False
    fields = ["code", "title", "audience", "window_start", "target_date", "window_end", "state", "source"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Procedure)
class ProcedureAdmin(PatientIdentityColumns, ClinicScopedAdmin):
    clinic_path = "patient__clinic"
    list_display = ["__str__", "patient", "kind", "performed_on", "fracture_diagnosed_on"]
    list_filter = ["kind", "patient__clinic"]
    list_select_related = ["patient"]
    search_fields = ["=patient__mrn", "patient__family_name"]
    autocomplete_fields = ["patient"]
    date_hierarchy = "performed_on"
    inlines = [TreatedLevelInline, RiskAssessmentInline, CheckpointInline]
    readonly_fields = ["protocol_version"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        # A new procedure is recorded in `save_related`, together with the levels of its inline.

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)
            services.refresh_procedure(procedure=form.instance, reason="procedure changed in the admin")
            return
        # Unsaved instances from every inline (only treated levels can be added); this also gives
        # the formsets what the admin's change message lists.
        levels = [level for formset in formsets for level in formset.save(commit=False)]
        level_fields = [f.attname for f in TreatedLevel._meta.concrete_fields if not (f.primary_key or f.is_relation)]
        fields = _form_values(form)
        procedure = services.record_procedure(
            patient=fields.pop("patient"),
            levels=[{name: getattr(level, name) for name in level_fields} for level in levels],
            **fields,
        )
        _take_identity(form.instance, procedure)


class CheckpointEventInline(admin.TabularInline):
    model = CheckpointEvent
    extra = 0
    can_delete = False
    fields = ["at", "kind", "by", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ServiceActionsAdmin(ClinicScopedAdmin):
    """Buttons on the change page that open a small form calling one service.

    `actions_forms` maps a URL name to (form class, button title, the sentence shown once it is done);
    forms are `ServiceActionForm`s.
    """

    actions_forms: dict = {}

    def _action_url_name(self, name: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{name}"

    def get_urls(self):
        return [
            path(
                f"<int:pk>/{name}/",
                self.admin_site.admin_view(self.action_view),
                {"action": name},
                name=self._action_url_name(name),
            )
            for name in self.actions_forms
        ] + super().get_urls()

    def action_view(self, request, pk, action):
        obj = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, obj):
            return redirect("admin:index")
        form_class, title, done = self.actions_forms[action]
        form = form_class(request.POST or None, instance=obj, user=request.user)
        if request.method == "POST" and form.is_valid() and form.save():
            messages.success(request, done)
            return redirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title}: {obj}",
            "form": form,
            "object": obj,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/service_action.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "service_actions": [
                (reverse(f"admin:{self._action_url_name(name)}", args=[object_id]), title)
                for name, (_, title, _done) in self.actions_forms.items()
            ],
        }
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Checkpoint)
class CheckpointAdmin(PatientIdentityColumns, ServiceActionsAdmin):
    """Checkpoints are planned by the protocol; staff complete, reschedule or cancel them."""

    clinic_path = "procedure__patient__clinic"
    patient_path = "procedure__patient"
    identity_replaces = "patient_name"
    list_display = [
        "code",
        "title",
        "patient_name",
        "state",
        "target_date",
        "window_end",
        "audience",
        "reminder_blocked",
        "priority",
    ]
    list_filter = ["state", "audience", "code", "priority", "procedure__patient__clinic"]
    list_select_related = ["procedure__patient"]
    search_fields = [
        "=procedure__patient__mrn",
        "procedure__patient__family_name",
        "procedure__patient__given_name",
        "=code",
    ]
    date_hierarchy = "target_date"
    inlines = [CheckpointEventInline]
    change_form_template = "admin/service_actions_change_form.html"
    actions_forms = {
        "complete": (CompleteCheckpointForm, "Complete with outcome", "The checkpoint was completed."),
        "reschedule": (RescheduleCheckpointForm, "Reschedule", "The checkpoint was given a new date."),
        "book": (BookAppointmentForm, "Record the booked appointment", "The booked appointment was recorded."),
        "cancel": (CancelCheckpointForm, "Cancel", "The checkpoint was cancelled."),
    }

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Checkpoint._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiClient)
class ApiClientAdmin(WritableRowActions, admin.ModelAdmin):
    """EHR integrations, managed per clinic: a clinic admin sees and changes only clients whose
    clinics are all theirs, and adds only clinics they manage. Tokens are created with
    `manage.py create_api_client` and shown once; here they can only be revoked. Every change of
    scopes or clinics and every revocation is a history record."""

    list_display = ["name", "token_prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("clinics", ScopedClinicFilter)]
    fields = ["name", "clinics", "scopes", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["token_prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]
    view_action = access.Action.MANAGE_CLINIC

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=access.manageable_api_clients(request.user).values("pk"))

    def _manages(self, request, obj) -> bool:
        if obj is None:
            return bool(access.clinics_for(request.user, access.Action.MANAGE_CLINIC))
        return access.manageable_api_clients(request.user).filter(pk=obj.pk).exists()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._manages(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._manages(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._manages(request, obj)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "clinics":
            managed = access.clinics_for(request.user, access.Action.MANAGE_CLINIC)
            kwargs["queryset"] = Clinic.objects.filter(id__in=managed)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        before = sorted(form.instance.clinics.values_list("id", flat=True)) if change else []
        super().save_related(request, form, formsets, change)
        after = sorted(form.instance.clinics.values_list("id", flat=True))
        if change and before != after:
            # The clinics are a many-to-many relation, which the row's history does not hold: say it.
            form.instance._change_reason = f"clinics {before} -> {after}"
            form.instance.save()

    def writable(self, request, queryset):
        return queryset.filter(pk__in=access.manageable_api_clients(request.user).values("pk"))

    @admin.action(description="Revoke the selected clients' tokens")
    def revoke(self, request, queryset):
        count = services.revoke_api_clients(clients=queryset, by=request.user)
        self.message_user(request, revoked_sentence(count))


def revoked_sentence(count: int) -> str:
    if count == 0:
        return "No token was revoked: the selected clients' tokens were revoked already."
    if count == 1:
        return "The token of one API client was revoked; it can no longer call the API."
    return f"The tokens of {count} API clients were revoked; they can no longer call the API."


# The audit trail (read-only history pages) is registered by its own module.
from . import admin_audit  # noqa: E402, F401
