"""FHIR Flag: red-flag alerts, read and searched by patient and status (active or inactive)."""

from django.db.models import Q
from fhir.resources.R4B.flag import Flag
from rest_framework.response import Response

from alerts.models import Alert, AlertState

from .base import FHIRError, FHIRView, drop_empty, int_id, iso, meta, ref, validated
from .codes import EXT_ALERT_STATE, FLAG_CATEGORY, LIVE_ALERT_STATES, SYSTEM_RULE, SYSTEM_TIER


def flag_resource(alert: Alert) -> dict:
    data = {
        "resourceType": "Flag",
        "id": str(alert.pk),
        "meta": meta(alert),
        "extension": [{"url": EXT_ALERT_STATE, "valueCode": alert.state}],
        "status": "active" if alert.state in LIVE_ALERT_STATES else "inactive",
        "category": [
            {"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]},
            {"coding": [{"system": SYSTEM_TIER, "code": alert.tier, "display": str(alert.get_tier_display())}]},
        ],
        "code": {"coding": [{"system": SYSTEM_RULE, "code": alert.code}], "text": f"{alert.code}: {alert.action}"},
        "subject": ref("Patient", alert.patient_id),
        "period": drop_empty({"start": iso(alert.first_seen_at), "end": iso(alert.resolved_at)}),
    }
    return validated(Flag, data)


class FlagTypeView(FHIRView):
    def get(self, request):
        patient_id = self.search_patient_id()
        rows = Alert.objects.filter(clinic_id__in=self.clinic_ids(), patient_id=patient_id)
        statuses = {s for value in request.query_params.getlist("status") for s in value.split(",")} or {"active"}
        condition = Q(pk__in=[])
        if "active" in statuses:
            condition |= Q(state__in=LIVE_ALERT_STATES)
        if "inactive" in statuses:
            condition |= Q(state=AlertState.RESOLVED)
        rows = rows.filter(condition).order_by("first_seen_at", "id")
        return self.bundle([flag_resource(alert) for alert in rows])


class FlagInstanceView(FHIRView):
    def get(self, request, pk):
        alert = Alert.objects.filter(clinic_id__in=self.clinic_ids(), pk=int_id(pk)).first()
        if alert is None:
            raise FHIRError(f"Flag/{pk} is not known.", status_code=404)
        return Response(flag_resource(alert))
