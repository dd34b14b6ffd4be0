from django.contrib import admin

from .models import Clinic, ClinicMembership, Patient, Procedure, TreatedLevel


class ClinicScopedAdmin(admin.ModelAdmin):
    """Staff see only rows of clinics they belong to; `clinic_path` leads from the row to its clinic."""

    clinic_path = "clinic"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.clinic_path}__memberships__user": request.user}).distinct()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "clinic" and not request.user.is_superuser:
            kwargs["queryset"] = Clinic.objects.filter(memberships__user=request.user)
        if db_field.name == "patient" and not request.user.is_superuser:
            kwargs["queryset"] = Patient.objects.for_user(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ClinicMembershipInline(admin.TabularInline):
    model = ClinicMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Clinic)
class ClinicAdmin(ClinicScopedAdmin):
    clinic_path = ""
    list_display = ["name", "slug", "time_zone", "phone"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ClinicMembershipInline]

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(memberships__user=request.user).distinct()


class ProcedureInline(admin.TabularInline):
    model = Procedure
    extra = 0
    fields = ["kind", "performed_on", "fracture_diagnosed_on", "baseline_pain"]
    show_change_link = True


@admin.register(Patient)
class PatientAdmin(ClinicScopedAdmin):
    list_display = ["mrn", "family_name", "given_name", "clinic", "status", "email_consent"]
    list_filter = ["clinic", "status", "email_consent"]
    list_select_related = ["clinic"]
    search_fields = ["=mrn", "family_name", "given_name"]
    autocomplete_fields = ["responsible_clinician"]
    inlines = [ProcedureInline]
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


class TreatedLevelInline(admin.TabularInline):
    model = TreatedLevel
    extra = 1


@admin.register(Procedure)
class ProcedureAdmin(ClinicScopedAdmin):
    clinic_path = "patient__clinic"
    list_display = ["__str__", "patient", "kind", "performed_on", "fracture_diagnosed_on"]
    list_filter = ["kind", "patient__clinic"]
    list_select_related = ["patient"]
    search_fields = ["=patient__mrn", "patient__family_name"]
    autocomplete_fields = ["patient", "performing_clinician"]
    date_hierarchy = "performed_on"
    inlines = [TreatedLevelInline]
