"""Alerts in the REST API, and the input of their actions (acknowledge, resolve)."""

from rest_framework import serializers

from alerts.models import Alert


class AlertSerializer(serializers.ModelSerializer):
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
            "resolve_note",
            "updated_at",
        ]
        read_only_fields = fields


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class ResolveSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000)
