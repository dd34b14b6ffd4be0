"""Patients in the REST API: registry fields, and the risk profile with its contributing factors."""

from zoneinfo import available_timezones

from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers

from patients.models import Clinic, Patient, RiskAssessment

TIME_ZONES = frozenset(available_timezones())

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


class TimeZoneField(serializers.CharField):
    """An IANA time zone name, checked against the zone database (a string in the schema, not a 600-value enum)."""

    default_error_messages = {"unknown_zone": "Not an IANA time zone name; use one such as Europe/London."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value not in TIME_ZONES:
            self.fail("unknown_zone")
        return value


class OptionalEmailField(serializers.EmailField):
    """The patient's email, null when there is none (stored as an empty string). Null, "" or no value all
    mean none."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, allow_blank=True, **kwargs)

    def run_validation(self, data=serializers.empty):
        value = super().run_validation(data)
        return "" if value is None else value

    def to_representation(self, value):
        return value or None


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
    timezone = TimeZoneField(source="time_zone", max_length=64, help_text="IANA time zone name, e.g. Europe/London.")
    email = OptionalEmailField(max_length=254, help_text="For reminders (with `email_consent`); null when none.")

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
