"""Temporary: the old import path of the names that alerts/api.py, alerts/fhir.py and tests/api use,
until those move. New code imports from `alerts.reports` and `alerts.escalation`."""

from .escalation import acknowledge_alert, resolve_alert
from .reports import submit_report

__all__ = ["acknowledge_alert", "resolve_alert", "submit_report"]
