"""Checkpoints in the REST API, and the input of their actions (complete, reschedule, cancel)."""

from rest_framework import serializers

from patients.models import Checkpoint


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
