"""Procedures in the REST API, with their treated levels."""

from rest_framework import serializers

from patients.models import VERTEBRAE, LeakSite, Patient, Procedure, ProcedureKind, TreatedLevel


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
            "ct_hu",
            "ct_hu_level",
            "ct_hu_scanner",
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
