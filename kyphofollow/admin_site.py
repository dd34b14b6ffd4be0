"""The admin site: its home is the worklist; the patient overview sits beside each patient."""

from django.contrib.admin import AdminSite
from django.urls import path


class KyphofollowAdminSite(AdminSite):
    site_header = "kyphofollow"
    site_title = "kyphofollow"
    index_title = "Follow-up after kyphoplasty and vertebroplasty"

    def index(self, request, extra_context=None):
        from alerts.dashboard import worklist

        return worklist(request, site=self)

    def get_urls(self):
        from alerts import dashboard

        return [
            path("tables/", self.admin_view(super().index), name="tables"),
            path("worklist/<str:kind>/<int:pk>/<str:action>/", self.admin_view(dashboard.act), name="worklist-act"),
            path(
                "patients/patient/<int:pk>/overview/",
                self.admin_view(dashboard.patient_overview),
                name="patient-overview",
            ),
        ] + super().get_urls()
