"""Alerts in the REST API, and the input of their actions (acknowledge, resolve)."""

from rest_framework import serializers

from alerts.models import Alert, ResolutionReason


class AlertSerializer(serializers.ModelSerializer):
    resolve_reason = serializers.ChoiceField(
        choices=ResolutionReason.choices, allow_blank=True, read_only=True, help_text="Empty until resolved."
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "patient",
            "procedure",
            "code",
            "tier",
            "state",
            "count",
            "action",
            "rule_source",
            "protocol_version",
            "first_seen_at",
            "last_seen_at",
            "level",
            "next_escalation_at",
            "acknowledged_at",
            "acknowledged_via",
            "acknowledge_note",
            "resolved_at",
            "resolve_reason",
            "resolve_note",
            "updated_at",
        ]
        read_only_fields = fields


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class ResolveSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=ResolutionReason.choices, help_text="Why the alert is closed (required, HAZ-47)."
    )
    note = serializers.CharField(max_length=2000, help_text="What was done.")
