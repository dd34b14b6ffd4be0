"""FHIR R4 facade URLs, included at `fhir/` (alerts.fhir; docs/fhir.md)."""

from django.urls import path, re_path

from . import fhir

urlpatterns = [
    re_path(r"^metadata/?$", fhir.MetadataView.as_view(), name="fhir-metadata"),
    re_path(r"^Patient/?$", fhir.PatientTypeView.as_view(), name="fhir-patient-type"),
    re_path(r"^Patient/(?P<pk>[^/]+)/?$", fhir.PatientInstanceView.as_view(), name="fhir-patient"),
    re_path(r"^Procedure/?$", fhir.ProcedureTypeView.as_view(), name="fhir-procedure-type"),
    re_path(r"^Procedure/(?P<pk>[^/]+)/?$", fhir.ProcedureInstanceView.as_view(), name="fhir-procedure"),
    re_path(r"^Questionnaire/(?P<pk>[^/]+)/?$", fhir.QuestionnaireInstanceView.as_view(), name="fhir-questionnaire"),
    re_path(
        r"^QuestionnaireResponse/?$",
        fhir.QuestionnaireResponseTypeView.as_view(),
        name="fhir-questionnaireresponse-type",
    ),
    re_path(
        r"^QuestionnaireResponse/(?P<pk>[^/]+)/?$",
        fhir.QuestionnaireResponseInstanceView.as_view(),
        name="fhir-questionnaireresponse",
    ),
    re_path(r"^Task/?$", fhir.TaskTypeView.as_view(), name="fhir-task-type"),
    re_path(r"^Task/(?P<pk>[^/]+)/?$", fhir.TaskInstanceView.as_view(), name="fhir-task"),
    re_path(r"^Flag/?$", fhir.FlagTypeView.as_view(), name="fhir-flag-type"),
    re_path(r"^Flag/(?P<pk>[^/]+)/?$", fhir.FlagInstanceView.as_view(), name="fhir-flag"),
    re_path(r"^Observation/?$", fhir.ObservationTypeView.as_view(), name="fhir-observation-type"),
    re_path(
        r"^MedicationStatement/?$", fhir.MedicationStatementTypeView.as_view(), name="fhir-medicationstatement-type"
    ),
    re_path(r"^MedicationRequest/?$", fhir.MedicationRequestTypeView.as_view(), name="fhir-medicationrequest-type"),
    path("", fhir.NotFoundView.as_view(), name="fhir-root"),
    re_path(r"^.*$", fhir.NotFoundView.as_view(), name="fhir-unknown"),
]
