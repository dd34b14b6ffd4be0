"""The admin's access rule for rows of a clinic: every decision asks `patients.access`."""

import functools

from django.contrib import admin
from django.urls import reverse

from . import access
from .admin_search import SessionSearchAdmin
from .models import Clinic, Patient, StaffRole


class ScopedClinicFilter(admin.RelatedFieldListFilter):
    """A clinic list filter offering only the clinics whose rows the user may see."""

    def field_choices(self, field, request, model_admin):
        clinics = Clinic.objects.filter(id__in=access.clinics_for(request.user, model_admin.view_action))
        return [(clinic.pk, str(clinic)) for clinic in clinics.order_by("name")]


class WritableRowActions:
    """A ModelAdmin mixin: every bulk action runs on the selected rows the admin's `writable(request,
    queryset)` keeps (the rows the user may change), never on the others."""

    def get_action(self, action):
        found = super().get_action(action)
        if found is None:
            return None
        func, name, description = found

        @functools.wraps(func)
        def on_writable_rows(modeladmin, request, queryset):
            return func(modeladmin, request, modeladmin.writable(request, queryset))

        return on_writable_rows, name, description


class ClinicScopedAdmin(SessionSearchAdmin, WritableRowActions, admin.ModelAdmin):
    """Every row is decided by `patients.access` for the row's clinic (`clinic_path` leads there):
    `view_action` to list or open it, `change_action` to add, change, delete it or run an action on
    it. Django's global permissions on top only decide which menus show. Its list search (a name or
    an MRN) is kept in the session, never in the URL (`patients.admin_search`)."""

    clinic_path = "clinic"
    view_action = access.Action.VIEW
    change_action = access.Action.RECORD
    # One COUNT for the paginator is enough; the unfiltered total would count the whole table again.
    show_full_result_count = False

    def get_queryset(self, request):
        return access.scoped(super().get_queryset(request), request.user, self.view_action, self.clinic_path)

    def writable(self, request, queryset):
        return access.scoped(queryset, request.user, self.change_action, self.clinic_path)

    def _may(self, request, action, obj) -> bool:
        if obj is None:
            return bool(access.clinics_for(request.user, action))
        return access.can(request.user, action, access.clinic_id_of(obj, self.clinic_path))

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and (
            self._may(request, self.view_action, obj) or self._may(request, self.change_action, obj)
        )

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self._may(request, self.change_action, None)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may(request, self.change_action, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may(request, self.change_action, obj)

    def get_list_filter(self, request):
        return [
            (entry, ScopedClinicFilter) if isinstance(entry, str) and entry.split("__")[-1] == "clinic" else entry
            for entry in super().get_list_filter(request)
        ]

    def get_search_results(self, request, queryset, search_term):
        if request.path == reverse("admin:autocomplete"):
            # The autocomplete fills a field of a form that writes: offer only rows the user may change.
            queryset = self.writable(request, queryset)
        return super().get_search_results(request, queryset, search_term)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        writable = access.clinics_for(request.user, self.change_action)
        if db_field.name == "clinic":
            kwargs["queryset"] = Clinic.objects.filter(id__in=writable)
        if db_field.name == "patient":
            kwargs["queryset"] = Patient.objects.filter(clinic_id__in=writable)
        if db_field.name in ("responsible_clinician", "performing_clinician"):
            # Only clinicians of the clinics the user may record in: the user list stays out of reach.
            staff = access.staff_in(writable, role=StaffRole.CLINICIAN)
            kwargs["queryset"] = staff.order_by("last_name", "first_name")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ParentScopedInline:
    """An inline may add, change or delete rows only where its parent row may be changed."""

    def _parent_writable(self, request, obj) -> bool:
        parent_admin = self.admin_site._registry[self.parent_model]
        return obj is None or parent_admin.has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._parent_writable(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._parent_writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._parent_writable(request, obj)


class ReadOnlyAdmin(ClinicScopedAdmin):
    """Rows written only by services: staff read them and act through buttons, never edit them."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RecordAdmin(ReadOnlyAdmin):
    """A record nobody changes through the app: history, checkpoint and alert events."""

    def has_change_permission(self, request, obj=None):
        return False
