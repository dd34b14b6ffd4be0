"""The entries of a protocol file as typed, frozen values, and the Protocol that holds them.

Every accessor on `Protocol` reads the file's data: code asks "which checkpoint records the DXA?"
or "how long does an acknowledge link last?" and never spells a checkpoint code or a number itself.
"""

from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

from .vocabulary import OPERATORS


@dataclass(frozen=True)
class Condition:
    fact: str
    op: str
    value: Any

    def holds(self, facts: dict[str, Any]) -> bool | None:
        """True or False, or None when the fact is not recorded."""
        actual = facts.get(self.fact)
        if actual is None:
            return None
        return OPERATORS[self.op](actual, self.value)


@dataclass(frozen=True)
class RiskFactor:
    id: str
    kind: str
    label: str
    points: int
    when: tuple[Condition, ...]
    source: str


@dataclass(frozen=True)
class TierRules:
    high_pain_points: int
    high_fracture_points: int
    high_if_new_fracture: bool
    high_cleft_day14_pain_at_least: int
    elevated_pain_points: int
    elevated_fracture_points: int
    source: str


@dataclass(frozen=True)
class ReassessmentRules:
    """How a re-assessment treats its inputs and its result (spec v0.2 §2)."""

    id: str
    lower_needs_confirmation: bool  # a lower tier waits for a clinician; a higher one applies at once
    medication_without_start_date: str  # "not_recorded" (0 points, listed missing) or "no_medication"
    source: str


@dataclass(frozen=True)
class CheckpointRule:
    id: str
    title: str
    audience: str
    source: str
    anchor: str = "procedure"
    target: int | None = None
    earliest: int | None = None
    latest: int | None = None
    at: tuple[str, ...] = ()
    condition: str | None = None
    calendar: bool = False
    reminder_every_days: int = 0
    reminder_max: int = 0
    triggered_only: bool = False
    patient_title: str = ""  # what the patient reads (the title above is the staff's)
    patient_text: str = ""


@dataclass(frozen=True)
class Intensification:
    id: str
    tier: str
    title: str
    anchor: str
    days: tuple[int, ...]
    earliest: int
    latest: int
    audience: str
    source: str
    reminder_every_days: int = 0
    reminder_max: int = 0
    patient_title: str = ""
    patient_text: str = ""


@dataclass(frozen=True)
class PatientMessagePolicy:
    """How often a patient is e-mailed: at most `weekly_cap` non-safety messages (reminders and
    check-in invitations) in any 7 days, each day's items together in one message that waits
    `gather_minutes` for the other items of its day; those of the checkpoints or reasons in
    `uncapped` always go at once and alone."""

    id: str
    weekly_cap: int
    gather_minutes: int
    uncapped: frozenset[str]
    source: str


@dataclass(frozen=True)
class Role:
    """The checkpoint that plays one named part (e.g. "dxa": the checkpoint a DXA result completes)."""

    id: str
    checkpoint: str
    label: str
    source: str


@dataclass(frozen=True)
class Outcome:
    """The outcome fields one checkpoint asks for beyond notes and pain; `required` must be given."""

    id: str
    checkpoint: str
    fields: tuple[str, ...]
    source: str
    required: str | None = None
    required_message: str = ""


@dataclass(frozen=True)
class EscalationStep:
    after_minutes: int
    notify: str


@dataclass(frozen=True)
class Escalation:
    """Who is notified when, for one alert tier, when a clinic has set no policy of its own."""

    id: str
    tier: str
    steps: tuple[EscalationStep, ...]
    repeat_minutes: int  # the last step is paged again this often until acknowledged
    source: str


@dataclass(frozen=True)
class Interval:
    id: str
    label: str
    length: timedelta
    source: str


@dataclass(frozen=True)
class CheckinPolicy:
    """Check-in invitations: which checkpoints send one, how long its link lasts, how often it is sent."""

    id: str
    checkpoints: frozenset[str]
    link_valid_days: int
    resend_after_days: int
    call_after_days: int
    invitations: int
    source: str


@dataclass(frozen=True)
class SecondOpinionInformation:
    """Findings after which the patient is shown neutral information about second opinions."""

    id: str
    findings: frozenset[str]
    source: str


@dataclass(frozen=True)
class Protocol:
    version: str
    title: str
    reminder_time: time
    tl_junction_levels: frozenset[str]
    medication_deadline_days: int
    factors: tuple[RiskFactor, ...]
    tiers: TierRules
    reassessment: ReassessmentRules
    checkpoints: tuple[CheckpointRule, ...]
    intensification: tuple[Intensification, ...]
    priority_tier: str
    priority_checkpoints: frozenset[str]
    roles: tuple[Role, ...]
    outcomes: tuple[Outcome, ...]
    escalation: tuple[Escalation, ...]
    intervals: tuple[Interval, ...]
    checkin: CheckinPolicy
    second_opinion_information: SecondOpinionInformation
    patient_messages: PatientMessagePolicy
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    def checkpoint(self, code: str) -> CheckpointRule:
        return next(rule for rule in self.checkpoints if rule.id == code)

    def patient_wording(self, code: str) -> tuple[str, str]:
        """The patient-facing title and sentence of checkpoint `code` (a checkpoint or a series)."""
        rule = next((r for r in (*self.intensification, *self.checkpoints) if r.id == code), None)
        if rule is None or not rule.patient_title:
            return "A follow-up step", "Your care team has planned a follow-up step for you."
        return rule.patient_title, rule.patient_text

    def checkpoint_for_role(self, role: str) -> str:
        """The checkpoint code that plays `role` (one of vocabulary.ROLES)."""
        return next(entry.checkpoint for entry in self.roles if entry.id == role)

    def outcome(self, code: str) -> Outcome | None:
        return next((entry for entry in self.outcomes if entry.checkpoint == code), None)

    def outcome_fields(self, code: str) -> tuple[str, ...]:
        """The outcome fields checkpoint `code` asks for beyond notes and pain; () for none."""
        entry = self.outcome(code)
        return entry.fields if entry else ()

    @property
    def outcome_field_names(self) -> tuple[str, ...]:
        """Every outcome field some checkpoint asks for, in the order the file first names them."""
        return tuple(dict.fromkeys(name for entry in self.outcomes for name in entry.fields))

    def outcome_errors(self, code: str, values: dict[str, Any]) -> dict[str, list[str]]:
        """The error of a completion of `code` that leaves its required outcome field empty (None)."""
        entry = self.outcome(code)
        if entry is None or entry.required is None or values.get(entry.required) is not None:
            return {}
        return {entry.required: [f"{code} {entry.required_message}"]}

    def escalation_policy(self, tier: str) -> list[dict]:
        """The default steps for an alert `tier`, as `EscalationPolicy.steps` stores them (a fresh list)."""
        entry = next(entry for entry in self.escalation if entry.tier == tier)
        return [{"after_minutes": step.after_minutes, "notify": step.notify} for step in entry.steps]

    def escalation_repeat(self, tier: str) -> timedelta:
        """How often the last step of an alert `tier` is paged again while nobody acknowledges."""
        return timedelta(minutes=next(entry.repeat_minutes for entry in self.escalation if entry.tier == tier))

    def interval(self, name: str) -> timedelta:
        return next(entry.length for entry in self.intervals if entry.id == name)

    def link_lifetime(self, kind: str) -> timedelta:
        """How long a link stays valid: "acknowledge" (a clinician's one-click acknowledge link),
        "checkin" (a check-in invitation) or "checkin_form" (the form session it opens)."""
        if kind == "checkin":
            return timedelta(days=self.checkin.link_valid_days)
        return self.interval({"acknowledge": "acknowledge_link", "checkin_form": "checkin_form"}[kind])

    @property
    def checkin_invitations(self) -> int:
        """How many times an unanswered check-in invitation is sent before it becomes a phone call."""
        return self.checkin.invitations

    @property
    def recent_dxa_days(self) -> int:
        """A DXA this many days before the procedure or fewer stands in for CP-06."""
        return self.interval("recent_dxa").days

    @property
    def extra_checkin_after(self) -> timedelta:
        return self.interval("extra_checkin")

    def shows_second_opinion(self, code: str) -> bool:
        """Whether a finding with rule id `code` shows the patient second-opinion information."""
        return code in self.second_opinion_information.findings
