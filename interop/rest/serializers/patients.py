"""Patients in the REST API: registry fields, and the risk profile with its contributing factors."""

from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers

from patients.models import TIME_ZONE_CHOICES, Clinic, Patient, RiskAssessment

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
    phone = PhoneNumberField(
        required=False,
        allow_blank=True,
        help_text="International format with the country code (E.164 on output), e.g. +442079460000.",
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
