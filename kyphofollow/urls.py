from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from alerts import views as alert_views

from .health import health
from .landing import landing

handler500 = "kyphofollow.unavailable.server_error"

urlpatterns = [
    path("", landing, name="landing"),
    path("", include("interop.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("health/", health, name="health"),
    path("admin/kpis/", include("alerts.kpi_views")),
    path("admin/import/", include("patients.admin_import")),
    path("admin/", admin.site.urls),
    path("c/<str:token>/", alert_views.checkin_start, name="checkin-start"),
    path("checkin/", alert_views.checkin_form, name="checkin-form"),
    path("checkin/done/", alert_views.checkin_done, name="checkin-done"),
    path("checkin/more/", alert_views.checkin_more, name="checkin-more"),
    path("ack/<str:token>/", alert_views.alert_acknowledge, name="alert-acknowledge"),
]

handler404 = "interop.errors.not_found"
