from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from alerts import api as alert_api
from alerts import views as alert_views
from patients import api as patient_api

from .health import health

router = DefaultRouter()
router.register("patients", patient_api.PatientViewSet, basename="patient")
router.register("procedures", patient_api.ProcedureViewSet, basename="procedure")
router.register("checkpoints", patient_api.CheckpointViewSet, basename="checkpoint")
router.register("symptom-reports", alert_api.SymptomReportViewSet, basename="symptom-report")
router.register("alerts", alert_api.AlertViewSet, basename="alert")

urlpatterns = [
    path("api/v1/protocol/", patient_api.ProtocolView.as_view(), name="api-protocol"),
    path("api/v1/", include(router.urls)),
    path("fhir/", include("alerts.fhir_urls")),
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
    path("ack/<str:token>/", alert_views.alert_acknowledge, name="alert-acknowledge"),
]
