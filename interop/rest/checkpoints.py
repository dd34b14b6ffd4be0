"""Checkpoints over REST: list, read, complete, reschedule and cancel."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from patients import services
from patients.models import Checkpoint

from ..auth import ClinicScopedMixin
from ..openapi import ERRORS
from .filters import CheckpointFilter
from .serializers.checkpoints import (
    CancelCheckpointSerializer,
    CheckpointSerializer,
    CompleteCheckpointSerializer,
    RescheduleCheckpointSerializer,
)


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
