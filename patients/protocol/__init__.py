"""The follow-up protocol as data: loading, validation, risk tiering and checkpoint planning.

Pure functions with no ORM, so that a clinician can review the rules and a test can run them in
microseconds. One TOML file per protocol version lives in `patients/protocols/`; every section is
required in every version, so a clinician reading one file sees every number the software uses.

- `vocabulary`: the names the code knows (anchors, tiers, facts, roles, outcome fields, source keys).
- `entries`: the typed entries and `Protocol`, whose accessors answer the code's questions.
- `parsing`, `operations`, `validation`, `loading`: reading and checking a file, errors naming the entry.
- `risk`: `assess` (spec §2). `planning`: `plan` (spec §3).

`alerts.rules` reads the rule sections (red flags, second opinion, pain rules, wording) of the same file.
"""

from .entries import (
    CheckinPolicy,
    CheckpointRule,
    Condition,
    Escalation,
    EscalationStep,
    Intensification,
    Interval,
    Outcome,
    Protocol,
    RiskFactor,
    Role,
    SecondOpinionInformation,
    TierRules,
)
from .loading import available_versions, get_protocol, latest_version, load_protocol_file, parse_protocol
from .planning import PlannedCheckpoint, ScheduleFacts, plan
from .risk import Assessment, Contribution, assess
from .vocabulary import (
    ALERT_TIERS,
    ANCHORS,
    AUDIENCES,
    CONDITIONS,
    FACTS,
    INTERVALS,
    LINKS,
    NOTIFY_TARGETS,
    OPERATORS,
    OUTCOME_FIELDS,
    PATIENT_FACING,
    PROTOCOL_DIR,
    ROLES,
    SPEC_KEYS,
    TIERS,
    ProtocolError,
)

__all__ = [
    "ALERT_TIERS",
    "ANCHORS",
    "AUDIENCES",
    "CONDITIONS",
    "FACTS",
    "INTERVALS",
    "LINKS",
    "NOTIFY_TARGETS",
    "OPERATORS",
    "OUTCOME_FIELDS",
    "PATIENT_FACING",
    "PROTOCOL_DIR",
    "ROLES",
    "SPEC_KEYS",
    "TIERS",
    "Assessment",
    "CheckinPolicy",
    "CheckpointRule",
    "Condition",
    "Contribution",
    "Escalation",
    "EscalationStep",
    "Intensification",
    "Interval",
    "Outcome",
    "PlannedCheckpoint",
    "Protocol",
    "ProtocolError",
    "RiskFactor",
    "Role",
    "ScheduleFacts",
    "SecondOpinionInformation",
    "TierRules",
    "assess",
    "available_versions",
    "get_protocol",
    "latest_version",
    "load_protocol_file",
    "parse_protocol",
    "plan",
]
