"""The words a protocol file may use: anchors, audiences, tiers, facts, roles, outcome fields and
the spec's source keys. The code knows these names; the file gives them their values."""

import operator
import re
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "protocols"
ANCHORS = ("procedure", "fracture", "medication_start")
AUDIENCES = ("patient_reminder", "coordinator_task", "clinician_visit")
PATIENT_FACING = ("patient_reminder", "clinician_visit")
CONDITIONS = ("no_dxa_in_last_2_years", "medication_started", "brace_prescribed")
TIERS = ("standard", "elevated", "high")
ALERT_TIERS = ("emergency", "urgent", "routine")
FACTS = (
    "intravertebral_cleft",
    "posterior_fascia_oedema",
    "cement_separated",
    "facet_joint_violation",
    "lowest_hu",
    "bmd_lowest_t_score",
    "cement_leakage",
    "tl_junction",
    "age",
    "no_medication_by_week_16",
)
OPERATORS = {"eq": operator.eq, "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
# Parts the software reads by name; the file says which checkpoint plays each.
ROLES = ("day14_pain", "dxa", "medication", "year_review", "repeat_dxa", "imaging_review")
# Checkpoint outcome fields a coordinator can record (the Checkpoint model's outcome columns).
OUTCOME_FIELDS = (
    "dxa_t_score",
    "dxa_date",
    "medication_started",
    "medication_drug",
    "medication_started_on",
    "medication_not_started_reason",
)
# Who an escalation step notifies (the same targets alerts.models.EscalationPolicy accepts).
NOTIFY_TARGETS = ("responsible_clinician", "coordinators", "on_call")
# Named intervals; each is one [[intervals]] entry.
INTERVALS = ("acknowledge_link", "checkin_form", "recent_dxa", "extra_checkin")
LINKS = ("acknowledge", "checkin", "checkin_form")
# Source keys of shared/clinical/spec.md v0.2: S0, S1 (the source articles), E1…E21 (external).
SPEC_KEYS = frozenset({"S0", "S1"} | {f"E{number}" for number in range(1, 22)})
SOURCE_KEY = re.compile(r"\b[SE]\d+\b")
DESIGN = "[DESIGN]"


class ProtocolError(ValueError):
    """A protocol file that cannot be used; the message names the file and the bad entry."""
