"""Patients over REST: list, read, register, change, upsert by MRN, and the risk profile."""

from collections.abc import Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response

from patients import services
from patients.models import Clinic, Patient, RiskAssessment

from ..auth import ClinicScopedMixin, caller_clinics
from ..idempotency import idempotent
from ..openapi import ERRORS, IDEMPOTENT, IDEMPOTENT_ERRORS
from .filters import PatientFilter
from .serializers.patients import PatientRiskSerializer, PatientSerializer


def _default_clinic(request, data) -> Clinic:
    clinic = data.pop("clinic", None)
    if clinic is not None:
        return clinic
    clinics = list(caller_clinics(request)[:2])
    if len(clinics) != 1:
        raise ApiValidationError({"clinic": ["This client serves more than one clinic: give the clinic slug."]})
    return clinics[0]


@extend_schema_view(
    list=extend_schema(
        summary="List patients",
        description="The patients of the caller's clinics. Find one by MRN with `search`; filter by status;"
        " `updated_since` for incremental sync.",
        responses={200: PatientSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Read a patient",
        description="One patient's registry record: identity, contact and consent, time zone, and the facts the "
        "risk rules use (DXA, osteoporosis medication, BMI, prior fractures).",
        responses={200: PatientSerializer, **ERRORS},
    ),
)
class PatientViewSet(ClinicScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PatientSerializer
    filterset_class = PatientFilter
    ordering_fields = ["id", "updated_at"]
    search_fields = ["=mrn"]

    def get_queryset(self):
        return self.scope(Patient.objects.select_related("clinic"))

    def get_serializer(self, *args, **kwargs):
        kwargs.setdefault("clinics", caller_clinics(self.request))
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        summary="Register a patient",
        description="Register a new patient in one of the caller's clinics (`clinic` may be left out when the "
        "client serves one clinic). An MRN already registered in the clinic is a 400; use `PUT "
        "/patients/by-mrn/{mrn}/` to create or update. Send an `Idempotency-Key` to retry safely.",
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

    @extend_schema(
        summary="Change a patient",
        description="Change some fields of a patient's record; fields left out keep their value. A change to a "
        "risk fact (DXA, medication, BMI…) re-assesses the patient's risk and follow-up plan. A patient cannot "
        "move to another clinic.",
        request=PatientSerializer,
        responses={200: PatientSerializer, **ERRORS},
    )
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
        description="Create the patient with this MRN in the clinic, or update the one already registered: "
        "201 when created, 200 when updated. Safe to repeat.",
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
        description="The patient's current risk tier (from the latest procedure's assessment), its pain and "
        "fracture points, and each contributing factor with the source of its rule. `incomplete` is true when "
        "facts the rules need are missing: the tier may then be too low.",
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
