"""The audit trail in the admin: history records and checkpoint events, readable where the user may
audit (or, for API clients, manage), changeable by nobody."""

from django.contrib import admin

from . import access
from .admin_scoping import RecordAdmin
from .models import ApiClient, CheckpointEvent, ClinicMembership, Patient, Procedure, TreatedLevel


class AuditRecordAdmin(RecordAdmin):
    """Audit records: readable where the user may audit (auditors), changeable by nobody."""

    view_action = access.Action.AUDIT

    date_hierarchy = "history_date"
    list_filter = ["history_type", "source"]

    def get_list_display(self, request):
        return ["history_date", "history_type", "history_user", "source", "api_client_id_stamp", *self.subject]

    def get_list_select_related(self, request):
        # History foreign keys are nullable, so the changelist's automatic select_related skips them.
        related = [name for name in self.subject if self.model._meta.get_field(name).is_relation]
        return ["history_user", *related]


@admin.register(Patient.history.model)
class PatientAuditAdmin(AuditRecordAdmin):
    subject = ["id", "mrn", "status"]
    search_fields = ["=mrn", "=id"]


@admin.register(Procedure.history.model)
class ProcedureAuditAdmin(AuditRecordAdmin):
    clinic_path = "patient__clinic"
    subject = ["id", "patient", "kind", "performed_on"]


@admin.register(TreatedLevel.history.model)
class TreatedLevelAuditAdmin(AuditRecordAdmin):
    clinic_path = "procedure__patient__clinic"
    subject = ["id", "procedure", "level"]


@admin.register(ApiClient.history.model)
class ApiClientAuditAdmin(AuditRecordAdmin):
    """Changes of an API client's name, scopes and clinics, and its revocation: readable by whoever
    manages or audits every clinic of the client (as its own admin page: clinics are many, so no one
    clinic path leads to them)."""

    subject = ["id", "name", "scopes", "revoked_at", "history_change_reason"]
    readers = (access.Action.MANAGE_CLINIC, access.Action.AUDIT)

    def _readable(self, request):
        return access.api_clients_within(request.user, *self.readers).values("pk")

    def get_queryset(self, request):
        return admin.ModelAdmin.get_queryset(self, request).filter(id__in=self._readable(request))

    def writable(self, request, queryset):
        return queryset.none()

    def _may(self, request, action, obj) -> bool:
        if obj is None:
            return any(access.clinics_for(request.user, reader) for reader in self.readers)
        return self.get_queryset(request).filter(pk=obj.pk).exists()


@admin.register(ClinicMembership.history.model)
class MembershipAuditAdmin(AuditRecordAdmin):
    subject = ["id", "user", "role", "on_call"]


@admin.register(CheckpointEvent)
class CheckpointEventAdmin(RecordAdmin):
    """Every checkpoint transition, with who (staff user or API client), when, through what and why."""

    clinic_path = "checkpoint__procedure__patient__clinic"
    list_display = ["at", "kind", "checkpoint", "by", "api_client", "source", "reason"]
    list_filter = ["kind", "source"]
    list_select_related = ["checkpoint", "by", "api_client"]
    date_hierarchy = "at"
