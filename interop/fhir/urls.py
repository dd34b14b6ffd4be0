"""FHIR R4 facade URLs, included at `fhir/` (interop.fhir; docs/fhir.md)."""

from django.urls import path, re_path

from . import base, flag, metadata, patient, procedure, questionnaire, results, task

urlpatterns = [
    re_path(r"^metadata/?$", metadata.MetadataView.as_view(), name="fhir-metadata"),
    re_path(r"^Patient/?$", patient.PatientTypeView.as_view(), name="fhir-patient-type"),
    re_path(
        r"^Patient/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$",
        patient.PatientInstanceView.as_view(),
        name="fhir-patient",
    ),
    re_path(r"^Procedure/?$", procedure.ProcedureTypeView.as_view(), name="fhir-procedure-type"),
    re_path(
        r"^Procedure/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$",
        procedure.ProcedureInstanceView.as_view(),
        name="fhir-procedure",
    ),
    re_path(r"^Questionnaire/?$", questionnaire.QuestionnaireTypeView.as_view(), name="fhir-questionnaire-type"),
    re_path(
        r"^Questionnaire/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$",
        questionnaire.QuestionnaireInstanceView.as_view(),
        name="fhir-questionnaire",
    ),
    re_path(
        r"^QuestionnaireResponse/?$",
        questionnaire.QuestionnaireResponseTypeView.as_view(),
        name="fhir-questionnaireresponse-type",
    ),
    re_path(
        r"^QuestionnaireResponse/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$",
        questionnaire.QuestionnaireResponseInstanceView.as_view(),
        name="fhir-questionnaireresponse",
    ),
    re_path(r"^Task/?$", task.TaskTypeView.as_view(), name="fhir-task-type"),
    re_path(r"^Task/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$", task.TaskInstanceView.as_view(), name="fhir-task"),
    re_path(r"^Flag/?$", flag.FlagTypeView.as_view(), name="fhir-flag-type"),
    re_path(r"^Flag/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$", flag.FlagInstanceView.as_view(), name="fhir-flag"),
    re_path(r"^Observation/?$", results.ObservationTypeView.as_view(), name="fhir-observation-type"),
    re_path(
        r"^Observation/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$",
        results.ObservationInstanceView.as_view(),
        name="fhir-observation",
    ),
    re_path(
        r"^MedicationStatement/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$",
        results.MedicationStatementInstanceView.as_view(),
        name="fhir-medicationstatement",
    ),
    re_path(
        r"^MedicationRequest/(?P<pk>[^/]+)(?:/_history/(?P<vid>[^/]+))?/?$",
        results.MedicationRequestInstanceView.as_view(),
        name="fhir-medicationrequest",
    ),
    re_path(
        r"^MedicationStatement/?$",
        results.MedicationStatementTypeView.as_view(),
        name="fhir-medicationstatement-type",
    ),
    re_path(r"^MedicationRequest/?$", results.MedicationRequestTypeView.as_view(), name="fhir-medicationrequest-type"),
    path("", base.NotFoundView.as_view(), name="fhir-root"),
    re_path(r"^.*$", base.NotFoundView.as_view(), name="fhir-unknown"),
]
