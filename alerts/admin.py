from django.contrib import admin

from patients.admin import ClinicScopedAdmin

from .models import Delivery, DigestRun


@admin.register(Delivery)
class DeliveryAdmin(ClinicScopedAdmin):
    """The outbox, read-only: what was sent, what is pending, and what failed for good."""

    list_display = ["id", "kind", "channel", "state", "attempts", "next_attempt_at", "sent_at", "last_error"]
    list_filter = ["state", "kind", "channel", "clinic"]
    list_select_related = ["clinic"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DigestRun)
class DigestRunAdmin(ClinicScopedAdmin):
    list_display = ["clinic", "local_date", "missed_count", "until"]
    list_filter = ["clinic"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in DigestRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
