"""Alerts over REST: list, read, acknowledge (stops escalation) and resolve."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from alerts import escalation
from alerts.models import Alert
from patients.access import Action

from ..auth import ClinicScopedMixin, request_actor
from ..idempotency import idempotent
from ..openapi import ACTION, ACTION_ERRORS, ERRORS
from .filters import AlertFilter
from .serializers.alerts import AcknowledgeSerializer, AlertSerializer, ResolveSerializer


@extend_schema_view(
    list=extend_schema(
        summary="List alerts",
        description="Alerts raised by the red-flag and review rules for the caller's patients. Filter by "
        "patient, state, tier or code; `updated_since` for incremental sync.",
        responses={200: AlertSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Read an alert",
        description="One alert: its rule (`code`, `rule_source`), tier, state, escalation level and the time of "
        "the next escalation step while it is open.",
        responses={200: AlertSerializer, **ERRORS},
    ),
)
class AlertViewSet(ClinicScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    write_action = Action.ACT_ON_ALERTS
    ordering_fields = ["id", "first_seen_at", "last_seen_at", "updated_at"]

    def get_queryset(self):
        return self.scope(Alert.objects.all())

    @extend_schema(
        summary="Acknowledge an alert (stops escalation)",
        description="Someone at the clinic has taken the alert in hand: escalation stops and no further page is "
        "sent. Only an open alert can be acknowledged; an alert already acknowledged or resolved answers 409 "
        "with its `current_state`. Send an `Idempotency-Key` to retry safely.",
        request=AcknowledgeSerializer,
        responses={200: AlertSerializer, **ACTION_ERRORS},
        **ACTION,
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def acknowledge(self, request, pk=None):
        alert = self.get_object()
        serializer = AcknowledgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, via = request_actor(request)
        alert = escalation.acknowledge_alert(alert=alert, by=user, via=via, **serializer.validated_data)
        return Response(AlertSerializer(alert).data)

    @extend_schema(
        summary="Resolve an alert",
        description="Close an open or acknowledged alert with a `reason` (one of the listed choices) and a "
        "`note` saying what was done; both are required (400 with field errors without them). An alert already "
        "resolved answers 409. Send an `Idempotency-Key` to retry safely.",
        request=ResolveSerializer,
        responses={200: AlertSerializer, **ACTION_ERRORS},
        **ACTION,
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def resolve(self, request, pk=None):
        alert = self.get_object()
        serializer = ResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, _ = request_actor(request)
        alert = escalation.resolve_alert(alert=alert, by=user, **serializer.validated_data)
        return Response(AlertSerializer(alert).data)
