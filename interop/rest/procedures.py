"""Procedures over REST: list, read, and record one (which plans its follow-up schedule)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from patients import services
from patients.models import Patient, Procedure

from ..auth import ClinicScopedMixin, caller_clinic_ids
from ..idempotency import idempotent
from ..openapi import ERRORS, IDEMPOTENT, IDEMPOTENT_ERRORS
from .filters import ProcedureFilter
from .serializers.procedures import ProcedureSerializer


@extend_schema_view(
    list=extend_schema(
        summary="List procedures",
        description="Kyphoplasty and vertebroplasty procedures of the caller's patients, with their treated "
        "levels. Filter by patient; `updated_since` for incremental sync.",
        responses={200: ProcedureSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Read a procedure",
        description="One procedure with its treated levels and the protocol version its schedule was planned under.",
        responses={200: ProcedureSerializer, **ERRORS},
    ),
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
        description="Record a procedure for one of the caller's patients, with one row per treated vertebra. Its "
        "risk is assessed and its follow-up checkpoints planned at once (list them with `GET /checkpoints/"
        "?procedure=`). Send an `Idempotency-Key` to retry safely.",
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
