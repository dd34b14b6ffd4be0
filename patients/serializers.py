"""API input and output shapes for the registry and the schedule. Serializers validate and shape;
services write."""

from rest_framework import serializers

from .models import (
    TIME_ZONE_CHOICES,
    VERTEBRAE,
    Checkpoint,
    Clinic,
    LeakSite,
    Patient,
    Procedure,
    ProcedureKind,
    RiskAssessment,
    TreatedLevel,
)

PATIENT_RISK_FIELDS = [
    "bmd_lowest_t_score",
    "dxa_date",
    "regular_outdoor_activity",
    "on_osteoporosis_med",
    "osteoporosis_drug",
    "osteoporosis_med_started_on",
    "bmi",
    "prior_vertebral_fractures",
]


class ClinicSlugField(serializers.SlugRelatedField):
    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value="(contains a NUL character)")
        return super().to_internal_value(data)


class PatientSerializer(serializers.ModelSerializer):
    clinic = ClinicSlugField(
        slug_field="slug",
        queryset=Clinic.objects.none(),
        required=False,
        help_text="Clinic slug; required when the client serves more than one clinic.",
    )
    timezone = serializers.ChoiceField(
        source="time_zone", choices=TIME_ZONE_CHOICES, help_text="IANA time zone, e.g. Europe/London."
    )

    class Meta:
        model = Patient
        fields = [
            "id",
            "clinic",
            "mrn",
            "given_name",
            "family_name",
            "birth_date",
            "sex",
            "email",
            "phone",
            "language",
            "timezone",
            "email_consent",
            "status",
            *PATIENT_RISK_FIELDS,
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        # Uniqueness and ranges are checked by the model in the service, with the same messages as the admin.
        validators = []

    def __init__(self, *args, clinics=None, **kwargs):
        super().__init__(*args, **kwargs)
        if clinics is not None:
            self.fields["clinic"].queryset = clinics


class TreatedLevelSerializer(serializers.ModelSerializer):
    level = serializers.ChoiceField(choices=VERTEBRAE, help_text="Vertebra T1–L5.")
    leak_site = serializers.ChoiceField(choices=LeakSite.choices, required=False, allow_blank=True)

    class Meta:
        model = TreatedLevel
        fields = [
            "level",
            "cement_leakage",
            "leak_site",
            "cement_distribution",
            "intravertebral_cleft",
            "hounsfield_units",
            "ct_scanner",
        ]
        validators = []


class ProcedureSerializer(serializers.ModelSerializer):
    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.none())
    kind = serializers.ChoiceField(choices=ProcedureKind.choices)
    levels = TreatedLevelSerializer(many=True)

    class Meta:
        model = Procedure
        fields = [
            "id",
            "patient",
            "kind",
            "performed_on",
            "fracture_diagnosed_on",
            "levels",
            "facet_joint_violation",
            "posterior_fascia_oedema",
            "baseline_pain",
            "brace_prescribed",
            "brace_type",
            "brace_planned_weeks",
            "new_fracture_diagnosed_on",
            "notes",
            "protocol_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "protocol_version", "created_at", "updated_at"]

    def __init__(self, *args, patients=None, **kwargs):
        super().__init__(*args, **kwargs)
        if patients is not None:
            self.fields["patient"].queryset = patients


class FactorSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.CharField()
    label = serializers.CharField()
    points = serializers.IntegerField()
    source = serializers.CharField()


class RiskAssessmentSerializer(serializers.ModelSerializer):
    factors = FactorSerializer(many=True)
    missing = serializers.ListField(child=serializers.CharField())
    incomplete = serializers.BooleanField()

    class Meta:
        model = RiskAssessment
        fields = [
            "procedure",
            "tier",
            "pain_points",
            "fracture_points",
            "factors",
            "missing",
            "incomplete",
            "reasons",
            "protocol_version",
            "change_reason",
            "created_at",
        ]


class PatientRiskSerializer(serializers.Serializer):
    patient = serializers.IntegerField()
    tier = serializers.ChoiceField(choices=["standard", "elevated", "high"], allow_null=True)
    pain_points = serializers.IntegerField(allow_null=True)
    fracture_points = serializers.IntegerField(allow_null=True)
    factors = FactorSerializer(many=True)
    incomplete = serializers.BooleanField()
    procedures = RiskAssessmentSerializer(many=True)


class CheckpointSerializer(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="procedure.patient_id", read_only=True)

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "patient",
            "procedure",
            "code",
            "sequence",
            "title",
            "audience",
            "source",
            "protocol_version",
            "priority",
            "window_start",
            "target_date",
            "window_end",
            "due_at",
            "state",
            "reminders_sent",
            "reminder_blocked",
            "completed_at",
            "outcome_notes",
            "pain_score",
            "dxa_t_score",
            "dxa_date",
            "medication_started",
            "medication_drug",
            "medication_started_on",
            "medication_not_started_reason",
            "updated_at",
        ]
        read_only_fields = fields


class CompleteCheckpointSerializer(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    pain_score = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10, default=None)
    dxa_t_score = serializers.DecimalField(
        max_digits=3, decimal_places=1, required=False, allow_null=True, min_value=-6, max_value=3, default=None
    )
    dxa_date = serializers.DateField(required=False, allow_null=True, default=None)
    medication_started = serializers.BooleanField(required=False, allow_null=True, default=None)
    medication_drug = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    medication_started_on = serializers.DateField(required=False, allow_null=True, default=None)
    medication_not_started_reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class RescheduleCheckpointSerializer(serializers.Serializer):
    target_date = serializers.DateField()
    reason = serializers.CharField(max_length=300)


class CancelCheckpointSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)
