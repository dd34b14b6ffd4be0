"""FHIR Flag: red-flag alerts, read and searched by patient and status (active or inactive)."""

from django.db.models import Q
from fhir.resources.R4B.flag import Flag

from alerts.models import Alert, AlertState

from .base import FHIRError, FHIRView, drop_empty, int_id, iso, meta, ref, validated
from .codes import EXT_ALERT_STATE, FLAG_CATEGORY, LIVE_ALERT_STATES, SYSTEM_RULE, SYSTEM_TIER
from .search import common_filters, page, values
from .versions import VersionedInstanceView


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
    def search(self, params):
        """patient (or subject), status (active, the default, and/or inactive), _id and _lastUpdated."""
        rows = Alert.objects.filter(clinic_id__in=self.clinic_ids())
        patient_id = self.search_patient_id(params)
        if patient_id is not None:
            rows = rows.filter(patient_id=patient_id)
        statuses = set(values(params, "status")) or {"active"}
        condition = Q(pk__in=[])
        if "active" in statuses:
            condition |= Q(state__in=LIVE_ALERT_STATES)
        if "inactive" in statuses:
            condition |= Q(state=AlertState.RESOLVED)
        return common_filters(rows.filter(condition), params).order_by("first_seen_at", "id")

    def get(self, request):
        return page(self, self.search(request.query_params), flag_resource)


class FlagInstanceView(VersionedInstanceView):
    resource_type = "Flag"

    def row(self, pk: str) -> Alert:
        alert = Alert.objects.filter(clinic_id__in=self.clinic_ids(), pk=int_id(pk)).first()
        if alert is None:
            raise FHIRError(f"Flag/{pk} is not known.", status_code=404)
        return alert

    def render(self, row: Alert) -> dict:
        return flag_resource(row)
