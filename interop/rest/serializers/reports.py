"""Symptom reports in the REST API, with the findings the rules gave."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts.models import PainkillerUse, SymptomReport
from alerts.painkillers import validate_painkillers
from patients.models import Patient, Procedure


class PainkillersField(serializers.ListField):
    """A list of painkiller kinds; one kind sent as a plain string (the older form) is a list of one."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data] if data else []
        values = super().to_internal_value(data)
        try:
            validate_painkillers(values)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return sorted(set(values))


class FindingSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Rule id, e.g. RF-05 or PAIN_NOT_IMPROVING.")
    tier = serializers.ChoiceField(choices=["emergency", "urgent", "routine"])
    kind = serializers.ChoiceField(choices=["alert", "review", "checkin"])
    action = serializers.CharField()
    source = serializers.CharField()


class DroppedFieldSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The field (or second-opinion code) that could not be read.")
    reason = serializers.CharField(help_text="Why it was not taken; the value sent is never echoed.")


NOTE_WORDS = {
    "patient_not_active": "The patient's follow-up status is {status}; the report was still taken.",
    "checkin_cancelled": "Sent for a check-in cancelled while it was being answered; taken without it.",
}


class SymptomReportSerializer(serializers.ModelSerializer):
    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.none())
    procedure = serializers.PrimaryKeyRelatedField(
        queryset=Procedure.objects.none(), required=False, help_text="Default: the patient's latest procedure."
    )
    red_flags = serializers.ListField(
        child=serializers.CharField(max_length=10),
        required=False,
        default=list,
        help_text='Red-flag codes answered yes, e.g. ["RF-05"].',
    )
    second_opinion = serializers.DictField(
        child=serializers.ChoiceField(choices=["yes", "no", "unsure"]),
        required=False,
        default=dict,
        help_text='Answers to the second-opinion questions, e.g. {"SO-2": "no"}.',
    )
    painkillers = PainkillersField(
        child=serializers.ChoiceField(choices=PainkillerUse.choices),
        required=False,
        help_text='Every kind taken, e.g. ["non_opioid", "opioid"] for paracetamol and codeine; one value as a'
        ' string ("opioid") is read as a list of one; "none" goes alone.',
    )
    pain_now = serializers.IntegerField(
        min_value=0,
        max_value=10,
        required=False,
        allow_null=True,
        help_text="Optional: a report with only red flags answered is taken and evaluated (capture rules).",
    )
    pain_average_24h = serializers.IntegerField(min_value=0, max_value=10, required=False, allow_null=True)
    findings = FindingSerializer(many=True, read_only=True)
    dropped_fields = serializers.SerializerMethodField(
        help_text="Answers not taken because they could not be read, while the report's red flags were "
        "(a red flag is never refused for another answer's sake). Send them again in a new report."
    )
    warnings = serializers.SerializerMethodField(
        help_text="What the sender should know about how the report was taken, in plain words: each dropped "
        "field, and a patient whose follow-up is not active (the report is still taken)."
    )

    class Meta:
        model = SymptomReport
        fields = [
            "id",
            "patient",
            "procedure",
            "reported_at",
            "pain_now",
            "pain_average_24h",
            "red_flags",
            "painkillers",
            "fell_since_last",
            "missed_medication_doses",
            "medication_side_effects",
            "wearing_brace",
            "doing_physio",
            "second_opinion",
            "other_symptoms",
            "source",
            "day",
            "findings",
            "dropped_fields",
            "warnings",
            "protocol_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "source", "day", "findings", "protocol_version", "created_at", "updated_at"]
        extra_kwargs = {"reported_at": {"required": False}}

    @extend_schema_field(DroppedFieldSerializer(many=True))
    def get_dropped_fields(self, report) -> list[dict]:
        return [
            {"field": note["field"], "reason": note["reason"]}
            for note in report.notes
            if note["code"] == "dropped_answer"
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_warnings(self, report) -> list[str]:
        words = []
        for note in report.notes:
            if note["code"] == "dropped_answer":
                words.append(f"{note['field']} was not taken: {note['reason']}")
            elif note["code"] in NOTE_WORDS:
                words.append(NOTE_WORDS[note["code"]].format(**note))
        return words

    def __init__(self, *args, patients=None, **kwargs):
        super().__init__(*args, **kwargs)
        if patients is not None:
            self.fields["patient"].queryset = patients
            self.fields["procedure"].queryset = Procedure.objects.filter(patient__in=patients)

    def validate(self, attrs):
        procedure = attrs.get("procedure")
        if procedure is not None and procedure.patient_id != attrs["patient"].pk:
            raise serializers.ValidationError({"procedure": ["This procedure belongs to another patient."]})
        if procedure is None:
            attrs["procedure"] = attrs["patient"].procedures.order_by("-performed_on", "-id").first()
            if attrs["procedure"] is None:
                raise serializers.ValidationError({"patient": ["The patient has no procedure recorded."]})
        return attrs
