"""Checkpoints over REST: list, read, complete, reschedule and cancel."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from patients import services
from patients.models import Checkpoint

from ..auth import ClinicScopedMixin
from ..idempotency import idempotent
from ..openapi import ACTION, ACTION_ERRORS, ERRORS
from .filters import CheckpointFilter
from .serializers.checkpoints import (
    CancelCheckpointSerializer,
    CheckpointSerializer,
    CompleteCheckpointSerializer,
    RescheduleCheckpointSerializer,
)


@extend_schema_view(
    list=extend_schema(
        summary="List checkpoints",
        description="The follow-up schedule: one row per planned checkpoint (visit, call, DXA, medication "
        "review…) of the caller's patients, with its window, due time and state. Filter by patient, procedure, "
        "state, code or `due_before`; `updated_since` for incremental sync.",
        responses={200: CheckpointSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Read a checkpoint",
        description="One checkpoint: the protocol rule it comes from (`code`, `source`), its window, state, "
        "reminders sent and, once completed, its outcome.",
        responses={200: CheckpointSerializer, **ERRORS},
    ),
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
        description="Record that the checkpoint took place, with its outcome (pain score, DXA result, "
        "osteoporosis medication); reminders stop and the patient's risk and plan are updated. Some checkpoints "
        "need their outcome (400 names the missing field). A checkpoint already completed or cancelled answers "
        "409 with its `current_state`. Send an `Idempotency-Key` to retry safely.",
        request=CompleteCheckpointSerializer,
        responses={200: CheckpointSerializer, **ACTION_ERRORS},
        **ACTION,
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def complete(self, request, pk=None):
        return self._act(request, CompleteCheckpointSerializer, services.complete_checkpoint)

    @extend_schema(
        summary="Move a checkpoint to a new date",
        description="Set a new target date (not in the past in the patient's time zone, not before the "
        "procedure) with a reason; the window widens to include it and reminders restart. A checkpoint already "
        "completed or cancelled answers 409. Send an `Idempotency-Key` to retry safely.",
        request=RescheduleCheckpointSerializer,
        responses={200: CheckpointSerializer, **ACTION_ERRORS},
        **ACTION,
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reschedule(self, request, pk=None):
        return self._act(request, RescheduleCheckpointSerializer, services.reschedule_checkpoint)

    @extend_schema(
        summary="Cancel a checkpoint",
        description="Drop a checkpoint from the schedule with a reason; its reminders stop. A checkpoint already "
        "completed or cancelled answers 409. Send an `Idempotency-Key` to retry safely.",
        request=CancelCheckpointSerializer,
        responses={200: CheckpointSerializer, **ACTION_ERRORS},
        **ACTION,
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request, pk=None):
        return self._act(request, CancelCheckpointSerializer, services.cancel_checkpoint)
