"""REST API for EHR systems: symptom reports (the same evaluation as the form) and alerts."""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from patients.api import ERRORS, IDEMPOTENT, IDEMPOTENT_ERRORS, UpdatedSinceFilter
from patients.auth import ClinicScopedMixin, caller_clinic_ids, idempotent
from patients.models import ApiClient, Patient

from . import alerting
from .models import Alert, SymptomReport
from .serializers import AcknowledgeSerializer, AlertSerializer, ResolveSerializer, SymptomReportSerializer


class ReportFilter(UpdatedSinceFilter):
    patient = django_filters.NumberFilter(field_name="patient_id")
    procedure = django_filters.NumberFilter(field_name="procedure_id")

    class Meta:
        model = SymptomReport
        fields = ["patient", "procedure", "updated_since"]


class AlertFilter(UpdatedSinceFilter):
    patient = django_filters.NumberFilter(field_name="patient_id")

    class Meta:
        model = Alert
        fields = ["patient", "state", "tier", "code", "updated_since"]


def _actor(request):
    """(staff user or None, how) for the audit trail of an alert action."""
    if isinstance(request.auth, ApiClient):
        return None, f"api client #{request.auth.pk}"
    return request.user, "api"


@extend_schema_view(
    list=extend_schema(summary="List symptom reports", responses={200: SymptomReportSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="Read a symptom report", responses={200: SymptomReportSerializer, **ERRORS}),
)
class SymptomReportViewSet(
    ClinicScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = SymptomReportSerializer
    filterset_class = ReportFilter
    clinic_lookup = "patient__clinic_id"
    ordering_fields = ["id", "reported_at", "updated_at"]

    def get_queryset(self):
        return self.scope(SymptomReport.objects.all())

    def get_serializer(self, *args, **kwargs):
        auth = self.request.auth
        # A client's clinics as a subquery: one query fewer on the hot path of an EHR posting reports.
        clinics = auth.clinics.values("id") if isinstance(auth, ApiClient) else caller_clinic_ids(self.request)
        kwargs.setdefault("patients", Patient.objects.filter(clinic_id__in=clinics))
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        summary="Send a symptom report",
        description="Runs the same rules as the patient's check-in form; the response carries the findings.",
        request=SymptomReportSerializer,
        responses={201: SymptomReportSerializer, **IDEMPOTENT_ERRORS},
        **IDEMPOTENT,
    )
    @idempotent
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("patient")
        user, _ = _actor(request)
        report = alerting.submit_report(source="api", entered_by=user, **data)
        serializer.instance = report
        return Response(serializer.data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="List alerts", responses={200: AlertSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="Read an alert", responses={200: AlertSerializer, **ERRORS}),
)
class AlertViewSet(ClinicScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    ordering_fields = ["id", "first_seen_at", "last_seen_at", "updated_at"]

    def get_queryset(self):
        return self.scope(Alert.objects.all())

    @extend_schema(
        summary="Acknowledge an alert (stops escalation)",
        request=AcknowledgeSerializer,
        responses={200: AlertSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self.get_object()
        serializer = AcknowledgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, via = _actor(request)
        alert = alerting.acknowledge_alert(alert=alert, by=user, via=via, **serializer.validated_data)
        return Response(AlertSerializer(alert).data)

    @extend_schema(summary="Resolve an alert", request=ResolveSerializer, responses={200: AlertSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        alert = self.get_object()
        serializer = ResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, _ = _actor(request)
        alert = alerting.resolve_alert(alert=alert, by=user, **serializer.validated_data)
        return Response(AlertSerializer(alert).data)
