"""Query filters of the REST lists (`?patient=`, `?state=`, `?updated_since=`, …)."""

import django_filters

from alerts.models import Alert, SymptomReport
from patients.models import Checkpoint, Patient, Procedure


class UpdatedSinceFilter(django_filters.FilterSet):
    updated_since = django_filters.IsoDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Only rows changed at or after this instant."
    )

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, declared in self.filters.items():
            # A blank value (e.g. a blank last-sync time or `?status=`) would silently drop the filter and
            # export everything, so it is refused like any other malformed value.
            if name in self.data and not self.data[name]:
                if isinstance(declared, django_filters.IsoDateTimeFilter):
                    self.form.add_error(name, "Give an ISO 8601 date-time, or leave the parameter out.")
                else:
                    self.form.add_error(name, "Give a value, or leave the parameter out.")
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
