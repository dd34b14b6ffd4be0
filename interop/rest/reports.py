"""Symptom reports over REST: list, read, and send one (evaluated by the same rules as the check-in form)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from alerts import reports
from alerts.models import SymptomReport
from patients import access
from patients.access import Action

from ..auth import ClinicScopedMixin, request_actor
from ..idempotency import idempotent
from ..openapi import ERRORS, IDEMPOTENT, IDEMPOTENT_ERRORS
from .filters import ReportFilter
from .serializers.reports import SymptomReportSerializer


@extend_schema_view(
    list=extend_schema(
        summary="List symptom reports",
        description="Symptom reports of the caller's patients, from any source (check-in form, phone entry, "
        "this API), with the findings the rules gave. Filter by patient or procedure; `updated_since` for "
        "incremental sync.",
        responses={200: SymptomReportSerializer(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Read a symptom report",
        description="One symptom report with its answers and the findings (red flags, reviews) the rules gave.",
        responses={200: SymptomReportSerializer, **ERRORS},
    ),
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
        # The patients a report may name: those of the clinics where the caller may read or record.
        action = Action.VIEW if self.request.method in permissions.SAFE_METHODS else Action.RECORD
        kwargs.setdefault("clinics", sorted(access.clinics_for(self.request.user, action)))
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        summary="Send a symptom report",
        description="Send what the patient reported (red flags answered yes, pain, medication, brace…). The same "
        "rules as the patient's check-in form run at once: a red flag raises an alert to the clinic, and the "
        "response lists the findings. Only the patient is required: a partial report is taken and evaluated. "
        "A red flag is never refused for another answer's sake: with a red flag answered yes, an answer that "
        "cannot be read is dropped, the report is taken (201) and `dropped_fields` and `warnings` say what was "
        "not taken and why; without one, such an answer is a 400 with field errors. "
        "Send an `Idempotency-Key` to retry safely.",
        request=SymptomReportSerializer,
        responses={201: SymptomReportSerializer, **IDEMPOTENT_ERRORS},
        **IDEMPOTENT,
    )
    @idempotent
    def create(self, request):
        serializer, dropped = self._validated(request.data)
        data = dict(serializer.validated_data)
        data.pop("patient")
        user, _ = request_actor(request)
        report = reports.submit_report(source="api", entered_by=user, notes=reports.dropped_notes(dropped), **data)
        serializer.instance = report
        return Response(serializer.data, status=status.HTTP_201_CREATED)

    def _validated(self, data):
        """The valid serializer and the fields dropped to make it so: a red flag is never refused for
        another answer's sake (HAZ-41). Errors on the patient, procedure, time or red flags themselves,
        or a report with no red flag yes, are a 400 as they are."""
        serializer = self.get_serializer(data=data)
        if serializer.is_valid():
            return serializer, []
        bad = sorted(serializer.errors)
        if not set(bad) <= reports.DROPPABLE:
            raise ValidationError(serializer.errors)
        rest = data.copy()  # a QueryDict (a form post) keeps its lists
        for name in bad:
            rest.pop(name, None)
        kept = self.get_serializer(data=rest)
        if not kept.is_valid() or not kept.validated_data.get("red_flags"):
            raise ValidationError(serializer.errors)
        return kept, bad
