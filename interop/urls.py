"""The EHR-facing URLs: the REST API at api/v1/ and the FHIR facade at fhir/ (included at the site root)."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from .rest import alerts, checkpoints, patients, procedures, protocol, reports

router = DefaultRouter()
router.register("patients", patients.PatientViewSet, basename="patient")
router.register("procedures", procedures.ProcedureViewSet, basename="procedure")
router.register("checkpoints", checkpoints.CheckpointViewSet, basename="checkpoint")
router.register("symptom-reports", reports.SymptomReportViewSet, basename="symptom-report")
router.register("alerts", alerts.AlertViewSet, basename="alert")

urlpatterns = [
    path("api/v1/protocol/", protocol.ProtocolView.as_view(), name="api-protocol"),
    path("api/v1/", include(router.urls)),
    path("fhir/", include("interop.fhir.urls")),
]
