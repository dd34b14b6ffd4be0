"""Every write to the registry, the risk assessments and the follow-up schedule. Keyword-only,
atomic, validated; callers import from here (`from patients.services import register_patient`).

    registry.py     patients and procedures (register, update, record)
    outcomes.py     completing a checkpoint with its outcome, carried into the patient's record
    schedule.py     planning: the plan for a tier, re-plans, the bulk planner, the state sweep
    checkpoints.py  the one writer of checkpoint state and its CheckpointEvents
    risk.py         risk facts, assessments and the RiskAssessment rows
    moments.py      local dates and the UTC instants a checkpoint opens, is due and closes
    api_clients.py  revoking an EHR integration's API client

Each module imports only those below it in this list, never the package itself.
"""

from .api_clients import revoke_api_clients
from .checkpoints import (
    ACTIONABLE_STATES,
    book_appointment,
    cancel_checkpoint,
    record_first_reminders,
    record_reminder_outcome,
    reschedule_checkpoint,
    stop_follow_up,
    trigger_checkpoint,
)
from .moments import local_moment, reminder_time
from .outcomes import complete_checkpoint
from .registry import record_procedure, register_patient, update_patient
from .risk import compute_assessment, current_tier, procedure_protocol, risk_facts
from .schedule import (
    reassess_and_replan,
    refresh_procedure,
    replan,
    schedule_facts,
    schedule_procedure,
    schedule_procedures,
    sweep_checkpoint_states,
)

__all__ = [
    "ACTIONABLE_STATES",
    "book_appointment",
    "cancel_checkpoint",
    "complete_checkpoint",
    "compute_assessment",
    "current_tier",
    "local_moment",
    "procedure_protocol",
    "reassess_and_replan",
    "record_first_reminders",
    "record_procedure",
    "record_reminder_outcome",
    "refresh_procedure",
    "register_patient",
    "reminder_time",
    "replan",
    "reschedule_checkpoint",
    "revoke_api_clients",
    "risk_facts",
    "schedule_facts",
    "schedule_procedure",
    "schedule_procedures",
    "stop_follow_up",
    "sweep_checkpoint_states",
    "trigger_checkpoint",
    "update_patient",
]
