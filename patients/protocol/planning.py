"""Checkpoint planning of spec §3: every checkpoint one procedure should have for its risk tier."""

from dataclasses import dataclass
from datetime import date, timedelta

from .entries import CheckpointRule, Intensification, Protocol


@dataclass(frozen=True)
class ScheduleFacts:
    """What the planner needs to know about one procedure and its patient."""

    procedure_date: date
    fracture_date: date | None = None
    medication_started_on: date | None = None
    last_dxa_on: date | None = None
    brace_prescribed: bool = False


@dataclass(frozen=True)
class PlannedCheckpoint:
    code: str
    sequence: int
    title: str
    audience: str
    anchor: str
    earliest: date
    target: date
    latest: date
    source: str
    reminder_every_days: int
    reminder_max: int
    calendar: bool = False
    priority: bool = False
    # The window closed before the procedure (an FLS clock of a fracture long before it): planned
    # with the protocol's dates all the same, late from the start, for a coordinator to review.
    late: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.code, self.sequence)


def _anchor_date(anchor: str, facts: ScheduleFacts) -> date | None:
    if anchor == "procedure":
        return facts.procedure_date
    if anchor == "fracture":
        return facts.fracture_date or facts.procedure_date
    return facts.medication_started_on


def _condition_holds(condition: str | None, facts: ScheduleFacts, protocol: Protocol) -> bool:
    if condition is None:
        return True
    if condition == "brace_prescribed":
        return facts.brace_prescribed
    if condition == "medication_started":
        return facts.medication_started_on is not None
    # no_dxa_in_last_2_years: counted back from the procedure date.
    return facts.last_dxa_on is None or (facts.procedure_date - facts.last_dxa_on).days > protocol.recent_dxa_days


def _window(anchor_day: date, earliest: int, target: int, latest: int, floor: date) -> tuple[date, date, date]:
    """The protocol's window counted from its anchor. One still open on `floor` (the procedure)
    opens no earlier than it; one that closed before it (an FLS clock of a fracture long before the
    procedure) keeps the spec's dates whole, late from the start, never shrunk to a day (E8)."""
    start = anchor_day + timedelta(days=earliest)
    end = anchor_day + timedelta(days=latest)
    if end < floor:
        return start, min(max(anchor_day + timedelta(days=target), start), end), end
    start = max(start, floor)
    return start, min(max(anchor_day + timedelta(days=target), start), end), end


def _entry(rule: CheckpointRule | Intensification, sequence: int, window: tuple[date, date, date], **extra):
    start, aim, end = window
    floor = extra.pop("floor", None)
    return PlannedCheckpoint(
        code=rule.id,
        sequence=sequence,
        title=rule.title,
        audience=rule.audience,
        anchor=extra.pop("anchor", rule.anchor),
        earliest=start,
        target=aim,
        latest=end,
        source=rule.source,
        reminder_every_days=rule.reminder_every_days,
        reminder_max=rule.reminder_max,
        late=floor is not None and end < floor,
        **extra,
    )


def _fixed(facts: ScheduleFacts, tier: str, protocol: Protocol) -> dict[str, PlannedCheckpoint]:
    """Checkpoints with a window of their own, by code."""
    planned = {}
    priority = tier == protocol.priority_tier
    for rule in protocol.checkpoints:
        if rule.triggered_only or rule.at or not _condition_holds(rule.condition, facts, protocol):
            continue
        anchor_day = _anchor_date(rule.anchor, facts)
        if anchor_day is None:
            continue
        window = _window(anchor_day, rule.earliest, rule.target, rule.latest, facts.procedure_date)
        planned[rule.id] = _entry(
            rule,
            1,
            window,
            calendar=rule.calendar,
            priority=priority and rule.id in protocol.priority_checkpoints,
            floor=facts.procedure_date,
        )
    return planned


def _alongside(facts: ScheduleFacts, protocol: Protocol, fixed: dict[str, PlannedCheckpoint]):
    """Checkpoints planned `at` others: one per other checkpoint planned, in its window."""
    for rule in protocol.checkpoints:
        if not rule.at or not _condition_holds(rule.condition, facts, protocol):
            continue
        for sequence, other in enumerate((fixed[code] for code in rule.at if code in fixed), start=1):
            window = (other.earliest, other.target, other.latest)
            yield _entry(
                rule, sequence, window, anchor=other.anchor, calendar=rule.calendar, floor=facts.procedure_date
            )


def _intensified(facts: ScheduleFacts, tier: str, protocol: Protocol):
    for series in protocol.intensification:
        anchor_day = _anchor_date(series.anchor, facts)
        if series.tier != tier or anchor_day is None:
            continue
        for sequence, day in enumerate(series.days, start=1):
            window = _window(anchor_day, day + series.earliest, day, day + series.latest, facts.procedure_date)
            yield _entry(series, sequence, window)


def plan(facts: ScheduleFacts, tier: str, protocol: Protocol) -> list[PlannedCheckpoint]:
    """Every checkpoint one procedure should have for `tier`, ordered by target date."""
    fixed = _fixed(facts, tier, protocol)
    planned = [*fixed.values(), *_alongside(facts, protocol, fixed), *_intensified(facts, tier, protocol)]
    planned.sort(key=lambda item: (item.target, item.code, item.sequence))
    return planned
