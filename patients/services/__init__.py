"""Every write to the registry, the risk assessments and the follow-up schedule. Keyword-only,
atomic, validated; callers import from here (`from patients.services import register_patient`).

    registry.py     patients and procedures (register, update, record)
    outcomes.py     completing a checkpoint with its outcome, carried into the patient's record
    tier_drops.py   a clinician confirming a lower tier (and the cancellations it brings)
    schedule.py     planning: the plan for a tier, re-plans, the bulk planner, the state and
                    week-16 medication sweeps
    checkpoints.py  the one writer of checkpoint state and its CheckpointEvents
    risk.py         risk facts, assessments, the RiskAssessment rows and held tier drops
    readings.py     tier inputs kept as history: DXA results, pain readings
    moments.py      local dates and the UTC instants a checkpoint opens, is due and closes
    working_time.py the clinic's working days, hours and holidays (response promises), reads only
    api_clients.py  revoking an EHR integration's API client
    conflicts.py    StateConflict: a change refused because the object has already moved on
    work.py         who has a patient's work of one kind; when an unanswered call comes back

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
from .conflicts import StateConflict
from .moments import local_moment, reminder_time
from .outcomes import complete_checkpoint
from .readings import record_dxa, record_pain
from .registry import record_dxa_result, record_procedure, register_patient, update_patient
from .risk import compute_assessment, current_tier, day14_window, procedure_protocol, risk_facts
from .schedule import (
    reassess_and_replan,
    refresh_procedure,
    replan,
    schedule_facts,
    schedule_procedure,
    schedule_procedures,
    sweep_checkpoint_states,
    sweep_medication_deadlines,
)
from .tier_drops import confirm_tier_drop
from .work import WORK_ACTION, assign_work, record_call_attempt
from .working_time import WorkingTime

__all__ = [
    "WORK_ACTION",
    "assign_work",
    "record_call_attempt",
    "ACTIONABLE_STATES",
    "WorkingTime",
    "StateConflict",
    "book_appointment",
    "cancel_checkpoint",
    "complete_checkpoint",
    "compute_assessment",
    "confirm_tier_drop",
    "current_tier",
    "day14_window",
    "local_moment",
    "procedure_protocol",
    "reassess_and_replan",
    "record_first_reminders",
    "record_dxa",
    "record_dxa_result",
    "record_pain",
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
    "sweep_medication_deadlines",
    "trigger_checkpoint",
    "update_patient",
]
