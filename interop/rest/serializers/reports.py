"""Symptom reports in the REST API, with the findings the rules gave."""

import copy

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


class LoadedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A primary key of a row in the serializer's `clinics` (reached by `clinic_lookup`), whose object the
    serializer may already have loaded (`SymptomReportSerializer.loaded`); any other value is looked up."""

    def __init__(self, *, model, clinic_lookup: str, **kwargs):
        # The model, not a queryset, among the arguments: each serializer's copy of the field is built
        # again from them, and copying a model class costs nothing.
        self.clinic_lookup = clinic_lookup
        super().__init__(queryset=model.objects.none(), **kwargs)

    def get_queryset(self):
        clinics = self.parent.clinics
        if clinics is None:
            return super().get_queryset()
        return self.queryset.model.objects.filter(**{f"{self.clinic_lookup}__in": clinics})

    def to_internal_value(self, data):
        found = self.parent.loaded.get(self.field_name) if type(data) is int else None
        if found is not None and found.pk == data:
            return found
        return super().to_internal_value(data)


class SymptomReportSerializer(serializers.ModelSerializer):
    patient = LoadedPrimaryKeyField(model=Patient, clinic_lookup="clinic_id")
    procedure = LoadedPrimaryKeyField(
        model=Procedure,
        clinic_lookup="patient__clinic_id",
        required=False,
        help_text="Default: the patient's latest procedure.",
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

    def __init__(self, *args, clinics=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinics = clinics  # ids of the clinics whose patients and procedures a report may name
        self.loaded: dict = {}

    _built_fields = None

    def get_fields(self):
        """The fields ModelSerializer builds from the model, built once per class and copied for each
        serializer (as DRF copies declared fields): building them costs more than the rest of a request's
        validation."""
        built = type(self).__dict__.get("_built_fields")
        if built is None:
            built = super().get_fields()
            type(self)._built_fields = built
        return copy.deepcopy(built)

    def to_internal_value(self, data):
        self.loaded = self._load(data)
        return super().to_internal_value(data)

    def _load(self, data) -> dict:
        """The procedure the body names (the patient's latest when it names none) with one query, if it is
        the named patient's and that patient is in the caller's clinics, for the two fields to take: the
        procedure as loaded, the patient as an id-only instance (nothing in a write reads more of it);
        {} when the ids are not plain integers or name nothing found together, and each field then looks
        its id up itself."""
        if self.clinics is None or not isinstance(data, dict) or type(data.get("patient")) is not int:
            return {}
        named = data.get("procedure")
        rows = Procedure.objects.filter(patient_id=data["patient"], patient__clinic_id__in=self.clinics)
        if named is None:
            found = rows.order_by("-performed_on", "-id")[:1]
        else:
            found = rows.filter(pk=named).order_by() if type(named) is int else []
        procedure = next(iter(found), None)
        if procedure is None:
            return {}
        patient = Patient.from_db(procedure._state.db, ["id"], [procedure.patient_id])
        return {"patient": patient, "procedure" if named is not None else "latest": procedure}

    def validate(self, attrs):
        procedure = attrs.get("procedure")
        if procedure is not None and procedure.patient_id != attrs["patient"].pk:
            raise serializers.ValidationError({"procedure": ["This procedure belongs to another patient."]})
        if procedure is None:
            latest = self.loaded.get("latest")
            if latest is None or latest.patient_id != attrs["patient"].pk:
                latest = attrs["patient"].procedures.order_by("-performed_on", "-id").first()
            attrs["procedure"] = latest
            if attrs["procedure"] is None:
                raise serializers.ValidationError({"patient": ["The patient has no procedure recorded."]})
        return attrs
