"""REST API for EHR systems: patients, procedures, risk, checkpoints and the protocol in force.

Reads use generic views narrowed to the caller's clinics; each write is input serializer → one
service → output serializer.
"""

from collections.abc import Mapping

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .auth import ClinicScopedMixin, caller_clinic_ids, idempotent
from .models import Checkpoint, Clinic, Patient, Procedure, RiskAssessment
from .protocol import get_protocol
from .serializers import (
    CancelCheckpointSerializer,
    CheckpointSerializer,
    CompleteCheckpointSerializer,
    PatientRiskSerializer,
    PatientSerializer,
    ProcedureSerializer,
    RescheduleCheckpointSerializer,
)

ERRORS = {
    400: OpenApiResponse(description='Invalid input: field-level messages, e.g. {"birth_date": ["…"]}.'),
    401: OpenApiResponse(description="No token, or an invalid or revoked one."),
    403: OpenApiResponse(description="The token lacks the scope (read or write) this needs."),
    404: OpenApiResponse(description="No such object among the caller's clinics."),
    413: OpenApiResponse(description="Request body over 1 MiB."),
    415: OpenApiResponse(description="Body is not application/json."),
    429: OpenApiResponse(description="Rate limited; see Retry-After."),
    503: OpenApiResponse(description="Database unavailable; nothing was saved. Retry later."),
}
IDEMPOTENT = {
    "parameters": [
        OpenApiParameter(
            "Idempotency-Key",
            str,
            OpenApiParameter.HEADER,
            required=False,
            description="Retry-safe key (1–255 characters): a retry with the same key and body returns the first "
            "response and creates nothing more.",
        )
    ],
}
IDEMPOTENT_ERRORS = {**ERRORS, 422: OpenApiResponse(description="Idempotency-Key reused with a different body.")}


class UpdatedSinceFilter(django_filters.FilterSet):
    updated_since = django_filters.IsoDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Only rows changed at or after this instant."
    )

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, declared in self.filters.items():
            # A blank time (e.g. a blank last-sync time) would silently drop the filter and export everything.
            if isinstance(declared, django_filters.IsoDateTimeFilter) and name in self.data and not self.data[name]:
                self.form.add_error(name, "Give an ISO 8601 date-time, or leave the parameter out.")
                valid = False
        return valid


class PatientFilter(UpdatedSinceFilter):
    class Meta:
        model = Patient
        fields = ["status", "updated_since"]


class ProcedureFilter(UpdatedSinceFilter):
    patient = django_filters.NumberFilter(field_name="patient_id")

    class Meta:
        model = Procedure
        fields = ["patient", "updated_since"]


class CheckpointFilter(UpdatedSinceFilter):
    patient = django_filters.NumberFilter(field_name="procedure__patient_id")
    procedure = django_filters.NumberFilter(field_name="procedure_id")
    due_before = django_filters.IsoDateTimeFilter(field_name="due_at", lookup_expr="lt")

    class Meta:
        model = Checkpoint
        fields = ["patient", "procedure", "state", "code", "due_before", "updated_since"]


def _caller_clinics(request):
    return Clinic.objects.filter(id__in=caller_clinic_ids(request))


def _default_clinic(request, data) -> Clinic:
    clinic = data.pop("clinic", None)
    if clinic is not None:
        return clinic
    clinics = list(_caller_clinics(request)[:2])
    if len(clinics) != 1:
        raise ApiValidationError({"clinic": ["This client serves more than one clinic: give the clinic slug."]})
    return clinics[0]


@extend_schema_view(
    list=extend_schema(summary="List patients", responses={200: PatientSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="Read a patient", responses={200: PatientSerializer, **ERRORS}),
)
class PatientViewSet(ClinicScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PatientSerializer
    filterset_class = PatientFilter
    ordering_fields = ["id", "updated_at", "family_name"]
    search_fields = ["=mrn"]

    def get_queryset(self):
        return self.scope(Patient.objects.select_related("clinic"))

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("clinics", _caller_clinics(self.request))
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        summary="Register a patient",
        request=PatientSerializer,
        responses={201: PatientSerializer, **IDEMPOTENT_ERRORS},
        **IDEMPOTENT,
    )
    @idempotent
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        patient = services.register_patient(clinic=_default_clinic(request, data), **data)
        return Response(self.get_serializer(patient).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a patient", request=PatientSerializer, responses={200: PatientSerializer, **ERRORS})
    def partial_update(self, request, pk=None):
        patient = self.get_object()
        serializer = self.get_serializer(patient, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "clinic" in data and data.pop("clinic") != patient.clinic:
            raise ApiValidationError({"clinic": ["A patient cannot move to another clinic."]})
        patient = services.update_patient(patient=patient, reason="changed over the API", **data)
        return Response(self.get_serializer(patient).data)

    @extend_schema(
        summary="Create or update a patient by MRN",
        description="Upsert keyed on the MRN within the clinic: 201 when created, 200 when updated.",
        request=PatientSerializer,
        responses={200: PatientSerializer, 201: PatientSerializer, **ERRORS},
    )
    @action(detail=False, methods=["put"], url_path=r"by-mrn/(?P<mrn>[^/]+)")
    def by_mrn(self, request, mrn=None):
        if not isinstance(request.data, Mapping):
            raise ApiValidationError({"non_field_errors": ["The body must be a JSON object."]})
        serializer = self.get_serializer(data={**request.data, "mrn": mrn})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        clinic = _default_clinic(request, data)
        existing = self.get_queryset().filter(clinic=clinic, mrn=mrn).first()
        if existing:
            patient = services.update_patient(patient=existing, reason="upserted over the API", **data)
            return Response(self.get_serializer(patient).data)
        try:
            patient = services.register_patient(clinic=clinic, **data)
        except DjangoValidationError as exc:
            racing = self.get_queryset().filter(clinic=clinic, mrn=mrn).first()
            if racing is None or "mrn" not in exc.message_dict:
                raise
            # Another request registered this MRN a moment ago: this upsert updates it instead.
            patient = services.update_patient(patient=racing, reason="upserted over the API", **data)
            return Response(self.get_serializer(patient).data)
        return Response(self.get_serializer(patient).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Risk tier, points and contributing factors with their sources",
        responses={200: PatientRiskSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def risk(self, request, pk=None):
        patient = self.get_object()
        assessments = list(
            RiskAssessment.objects.filter(procedure__patient=patient, is_current=True).order_by(
                "-procedure__performed_on"
            )
        )
        latest = assessments[0] if assessments else None
        body = {
            "patient": patient.pk,
            "tier": latest.tier if latest else None,
            "pain_points": latest.pain_points if latest else None,
            "fracture_points": latest.fracture_points if latest else None,
            "factors": latest.factors if latest else [],
            "incomplete": any(a.incomplete for a in assessments) or not assessments,
            "procedures": assessments,
        }
        return Response(PatientRiskSerializer(body).data)


@extend_schema_view(
    list=extend_schema(summary="List procedures", responses={200: ProcedureSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="Read a procedure", responses={200: ProcedureSerializer, **ERRORS}),
)
class ProcedureViewSet(ClinicScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ProcedureSerializer
    filterset_class = ProcedureFilter
    clinic_lookup = "patient__clinic_id"
    ordering_fields = ["id", "updated_at", "performed_on"]

    def get_queryset(self):
        return self.scope(Procedure.objects.prefetch_related("levels"))

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("patients", Patient.objects.filter(clinic_id__in=caller_clinic_ids(self.request)))
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        summary="Record a procedure (plans its follow-up schedule)",
        request=ProcedureSerializer,
        responses={201: ProcedureSerializer, **IDEMPOTENT_ERRORS},
        **IDEMPOTENT,
    )
    @idempotent
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        procedure = services.record_procedure(patient=data.pop("patient"), levels=data.pop("levels"), **data)
        return Response(self.get_serializer(procedure).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="List checkpoints", responses={200: CheckpointSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="Read a checkpoint", responses={200: CheckpointSerializer, **ERRORS}),
)
class CheckpointViewSet(ClinicScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = CheckpointSerializer
    filterset_class = CheckpointFilter
    clinic_lookup = "procedure__patient__clinic_id"
    ordering_fields = ["id", "due_at", "updated_at", "target_date"]

    def get_queryset(self):
        return self.scope(Checkpoint.objects.select_related("procedure"))

    def _act(self, request, input_class, service, **extra):
        checkpoint = self.get_object()
        serializer = input_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        by = request.user if request.user.pk else None
        service(checkpoint=checkpoint, by=by, **serializer.validated_data, **extra)
        checkpoint.refresh_from_db()
        return Response(CheckpointSerializer(checkpoint).data)

    @extend_schema(
        summary="Complete a checkpoint with its outcome",
        request=CompleteCheckpointSerializer,
        responses={200: CheckpointSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        return self._act(request, CompleteCheckpointSerializer, services.complete_checkpoint)

    @extend_schema(
        summary="Move a checkpoint to a new date",
        request=RescheduleCheckpointSerializer,
        responses={200: CheckpointSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def reschedule(self, request, pk=None):
        return self._act(request, RescheduleCheckpointSerializer, services.reschedule_checkpoint)

    @extend_schema(
        summary="Cancel a checkpoint",
        request=CancelCheckpointSerializer,
        responses={200: CheckpointSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(request, CancelCheckpointSerializer, services.cancel_checkpoint)


class ProtocolView(APIView):
    """The protocol version in force for the caller's clinic, with every rule's id and source."""

    @extend_schema(
        summary="Protocol in force, with sources",
        parameters=[OpenApiParameter("clinic", str, description="Clinic slug (default: the caller's only clinic)")],
        responses={200: dict, **ERRORS},
    )
    def get(self, request):
        clinics = _caller_clinics(request)
        slug = request.query_params.get("clinic")
        clinic = clinics.filter(slug=slug).first() if slug else clinics.first()
        if clinic is None:
            return Response({"detail": "No such clinic for this caller."}, status=404)
        protocol = get_protocol(clinic.protocol_version)
        return Response(
            {"clinic": clinic.slug, "version": protocol.version, "title": protocol.title, "protocol": protocol.raw}
        )
