"""The follow-up protocol as data: loading, validation, risk tiering and checkpoint planning.

Pure functions with no ORM, so that a clinician can review the rules and a test can run them in
microseconds. One TOML file per protocol version lives in `patients/protocols/`.
"""

import operator
import tomllib
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
ANCHORS = ("procedure", "fracture", "medication_start")
AUDIENCES = ("patient_reminder", "coordinator_task", "clinician_visit")
PATIENT_FACING = ("patient_reminder", "clinician_visit")
CONDITIONS = ("no_dxa_in_last_2_years", "medication_started", "brace_prescribed")
TIERS = ("standard", "elevated", "high")
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
DXA_RECENT_DAYS = 730  # "unless one was done in the last 2 years" (CP-06, [DESIGN])


class ProtocolError(ValueError):
    """A protocol file that cannot be used; the message names the file and the bad entry."""


# --- Data ---------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Protocol:
    version: str
    title: str
    reminder_time: time
    tl_junction_levels: frozenset[str]
    medication_deadline_days: int
    factors: tuple[RiskFactor, ...]
    tiers: TierRules
    checkpoints: tuple[CheckpointRule, ...]
    intensification: tuple[Intensification, ...]
    priority_tier: str
    priority_checkpoints: frozenset[str]
    raw: dict = field(repr=False, compare=False, default_factory=dict)

    def checkpoint(self, code: str) -> CheckpointRule:
        return next(rule for rule in self.checkpoints if rule.id == code)


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

    @property
    def key(self) -> tuple[str, int]:
        return (self.code, self.sequence)


@dataclass(frozen=True)
class Contribution:
    id: str
    kind: str
    label: str
    points: int
    source: str


@dataclass(frozen=True)
class Assessment:
    tier: str
    pain_points: int
    fracture_points: int
    factors: tuple[Contribution, ...]
    missing: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)


# --- Loading and validation ---------------------------------------------------------------------


def _require(entry: dict, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in entry:
        raise ProtocolError(f"{where}: missing '{key}'")
    value = entry[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


def _check_choice(value: str, choices: tuple[str, ...], where: str, key: str) -> str:
    if value not in choices:
        raise ProtocolError(f"{where}: unknown {key} '{value}' (expected one of {', '.join(choices)})")
    return value


def _check_window(earliest: int, target: int, latest: int, where: str) -> None:
    if not earliest <= target <= latest:
        raise ProtocolError(
            f"{where}: window must satisfy earliest <= target <= latest, got {earliest}/{target}/{latest}"
        )


def _reminders(entry: dict, where: str, audience: str) -> dict:
    if audience not in PATIENT_FACING:
        return {}
    every = _require(entry, "reminder_every_days", where, int)
    most = _require(entry, "reminder_max", where, int)
    if every < 1 or most < 1:
        raise ProtocolError(f"{where}: reminder_every_days and reminder_max must be at least 1")
    return {"reminder_every_days": every, "reminder_max": most}


def _parse_factor(entry: dict, where: str) -> RiskFactor:
    conditions = []
    for index, cond in enumerate(_require(entry, "when", where, list)):
        cond_where = f"{where} when[{index}]"
        fact = _check_choice(_require(cond, "fact", cond_where, str), FACTS, cond_where, "fact")
        op = _check_choice(_require(cond, "op", cond_where, str), tuple(OPERATORS), cond_where, "op")
        if "value" not in cond:
            raise ProtocolError(f"{cond_where}: missing 'value'")
        conditions.append(Condition(fact=fact, op=op, value=cond["value"]))
    if not conditions:
        raise ProtocolError(f"{where}: 'when' needs at least one condition")
    return RiskFactor(
        id=_require(entry, "id", where, str),
        kind=_check_choice(_require(entry, "kind", where, str), ("pain", "fracture"), where, "kind"),
        label=_require(entry, "label", where, str),
        points=_require(entry, "points", where, int),
        when=tuple(conditions),
        source=_require(entry, "source", where, str),
    )


def _parse_checkpoint(entry: dict, where: str) -> CheckpointRule:
    audience = _check_choice(_require(entry, "audience", where, str), AUDIENCES, where, "audience")
    common = {
        "id": _require(entry, "id", where, str),
        "title": _require(entry, "title", where, str),
        "audience": audience,
        "source": _require(entry, "source", where, str),
        "calendar": bool(entry.get("calendar", False)),
    }
    if "condition" in entry:
        common["condition"] = _check_choice(_require(entry, "condition", where, str), CONDITIONS, where, "condition")
    if entry.get("triggered_only"):
        earliest = _require(entry, "earliest", where, int)
        target = _require(entry, "target", where, int)
        latest = _require(entry, "latest", where, int)
        _check_window(earliest, target, latest, where)
        return CheckpointRule(**common, earliest=earliest, target=target, latest=latest, triggered_only=True)
    if "at" in entry:
        return CheckpointRule(**common, at=tuple(_require(entry, "at", where, list)))
    anchor = _check_choice(_require(entry, "anchor", where, str), ANCHORS, where, "anchor")
    earliest = _require(entry, "earliest", where, int)
    target = _require(entry, "target", where, int)
    latest = _require(entry, "latest", where, int)
    _check_window(earliest, target, latest, where)
    return CheckpointRule(
        **common, anchor=anchor, earliest=earliest, target=target, latest=latest, **_reminders(entry, where, audience)
    )


def _parse_intensification(entry: dict, where: str) -> Intensification:
    audience = _check_choice(_require(entry, "audience", where, str), AUDIENCES, where, "audience")
    days = _require(entry, "days", where, list)
    if not days or any(not isinstance(day, int) or day < 1 for day in days) or days != sorted(set(days)):
        raise ProtocolError(f"{where}: 'days' must be a non-empty, increasing list of days >= 1")
    earliest = _require(entry, "earliest", where, int)
    latest = _require(entry, "latest", where, int)
    _check_window(earliest, 0, latest, where)
    return Intensification(
        id=_require(entry, "id", where, str),
        tier=_check_choice(_require(entry, "tier", where, str), TIERS, where, "tier"),
        title=_require(entry, "title", where, str),
        anchor=_check_choice(_require(entry, "anchor", where, str), ANCHORS, where, "anchor"),
        days=tuple(days),
        earliest=earliest,
        latest=latest,
        audience=audience,
        source=_require(entry, "source", where, str),
        **_reminders(entry, where, audience),
    )


def parse_protocol(data: dict, *, name: str = "protocol") -> Protocol:
    """Validate a parsed protocol document; every error names the file and the entry."""
    version = _require(data, "version", name, str)
    delivery = _require(data, "delivery", name, dict)
    try:
        reminder_time = time.fromisoformat(_require(delivery, "reminder_time", f"{name} [delivery]", str))
    except ValueError:
        raise ProtocolError(f"{name} [delivery]: reminder_time must be HH:MM") from None
    risk = _require(data, "risk", name, dict)
    tier_data = _require(risk, "tiers", f"{name} [risk]", dict)
    tiers = TierRules(
        **{key: _require(tier_data, key, f"{name} [risk.tiers]", (int, str)) for key in TierRules.__dataclass_fields__}
    )

    factors, checkpoints, series = [], [], []
    for index, entry in enumerate(_require(risk, "factors", f"{name} [risk]", list)):
        factors.append(_parse_factor(entry, f"{name} risk.factors[{index}] ({entry.get('id', '?')})"))
    for index, entry in enumerate(_require(data, "checkpoints", name, list)):
        checkpoints.append(_parse_checkpoint(entry, f"{name} checkpoints[{index}] ({entry.get('id', '?')})"))
    for index, entry in enumerate(data.get("intensification", [])):
        series.append(_parse_intensification(entry, f"{name} intensification[{index}] ({entry.get('id', '?')})"))

    for label, items in (("risk factor", factors), ("checkpoint", checkpoints)):
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ProtocolError(f"{name}: duplicate {label} id '{item.id}'")
            seen.add(item.id)
    fixed = {rule.id for rule in checkpoints if rule.target is not None}
    for rule in checkpoints:
        for other in rule.at:
            if other not in fixed:
                raise ProtocolError(
                    f"{name} checkpoint {rule.id}: 'at' names '{other}', which has no window of its own"
                )
    series_ids = [entry.id for entry in series]
    if len(series_ids) != len(set(series_ids)):
        raise ProtocolError(f"{name}: duplicate intensification id")

    priority = data.get("priority", {})
    return Protocol(
        version=version,
        title=data.get("title", version),
        reminder_time=reminder_time,
        tl_junction_levels=frozenset(_require(risk, "tl_junction_levels", f"{name} [risk]", list)),
        medication_deadline_days=_require(risk, "medication_deadline_days_from_fracture", f"{name} [risk]", int),
        factors=tuple(factors),
        tiers=tiers,
        checkpoints=tuple(checkpoints),
        intensification=tuple(series),
        priority_tier=priority.get("tier", "high"),
        priority_checkpoints=frozenset(priority.get("checkpoints", ())),
        raw=data,
    )


def load_protocol_file(path: Path) -> Protocol:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{path.name}: not valid TOML: {exc}") from None
    protocol = parse_protocol(data, name=path.name)
    if f"{protocol.version}.toml" != path.name:
        raise ProtocolError(f"{path.name}: version '{protocol.version}' does not match the file name")
    return protocol


@cache
def get_protocol(version: str) -> Protocol:
    path = PROTOCOL_DIR / f"{version}.toml"
    if not path.is_file():
        raise ProtocolError(f"no protocol file for version '{version}'")
    return load_protocol_file(path)


def available_versions() -> list[str]:
    return sorted(path.stem for path in PROTOCOL_DIR.glob("*.toml"))


def latest_version() -> str:
    return available_versions()[-1]


# --- Risk ---------------------------------------------------------------------------------------


def assess(
    facts: dict[str, Any], protocol: Protocol, *, new_fracture: bool = False, day14_pain: int | None = None
) -> Assessment:
    """Points and tier of spec §2. A missing fact adds 0 points and is listed in `missing`."""
    contributions, missing = [], []
    points = {"pain": 0, "fracture": 0}
    for factor in protocol.factors:
        results = [condition.holds(facts) for condition in factor.when]
        if any(results):
            contributions.append(Contribution(factor.id, factor.kind, factor.label, factor.points, factor.source))
            points[factor.kind] += factor.points
        # A fact not recorded is listed even when another one already scores: the profile is incomplete.
        missing.extend(
            c.fact
            for c, r in zip(factor.when, results, strict=True)
            if r is None or c.fact in facts.get("partly_recorded", ())
        )
    rules = protocol.tiers
    reasons = []
    if points["pain"] >= rules.high_pain_points:
        reasons.append(f"pain points {points['pain']} >= {rules.high_pain_points}")
    if points["fracture"] >= rules.high_fracture_points:
        reasons.append(f"fracture points {points['fracture']} >= {rules.high_fracture_points}")
    if new_fracture and rules.high_if_new_fracture:
        reasons.append("new vertebral fracture")
    if (
        facts.get("intravertebral_cleft")
        and day14_pain is not None
        and day14_pain >= rules.high_cleft_day14_pain_at_least
    ):
        reasons.append(f"cleft with pain {day14_pain}/10 at day 14")
    if reasons:
        tier = "high"
    elif points["pain"] >= rules.elevated_pain_points or points["fracture"] >= rules.elevated_fracture_points:
        tier = "elevated"
        reasons.append(f"pain points {points['pain']}, fracture points {points['fracture']}")
    else:
        tier = "standard"
    return Assessment(
        tier=tier,
        pain_points=points["pain"],
        fracture_points=points["fracture"],
        factors=tuple(contributions),
        missing=tuple(dict.fromkeys(missing)),
        reasons=tuple(reasons),
    )


# --- Planning -----------------------------------------------------------------------------------


def _anchor_date(anchor: str, facts: ScheduleFacts) -> date | None:
    if anchor == "procedure":
        return facts.procedure_date
    if anchor == "fracture":
        return facts.fracture_date or facts.procedure_date
    return facts.medication_started_on


def _condition_holds(condition: str | None, facts: ScheduleFacts) -> bool:
    if condition is None:
        return True
    if condition == "brace_prescribed":
        return facts.brace_prescribed
    if condition == "medication_started":
        return facts.medication_started_on is not None
    # no_dxa_in_last_2_years: counted back from the procedure date.
    return facts.last_dxa_on is None or (facts.procedure_date - facts.last_dxa_on).days > DXA_RECENT_DAYS


def _window(anchor_day: date, earliest: int, target: int, latest: int, floor: date) -> tuple[date, date, date]:
    """Dates of the window, never before `floor` (the procedure): an FLS clock that started long
    before the procedure is due at once rather than in the past."""
    start = max(anchor_day + timedelta(days=earliest), floor)
    end = max(anchor_day + timedelta(days=latest), floor)
    aim = min(max(anchor_day + timedelta(days=target), start), end)
    return start, aim, end


def plan(facts: ScheduleFacts, tier: str, protocol: Protocol) -> list[PlannedCheckpoint]:
    """Every checkpoint one procedure should have for `tier`, ordered by target date."""
    planned: list[PlannedCheckpoint] = []
    by_code: dict[str, PlannedCheckpoint] = {}
    priority = tier == protocol.priority_tier
    for rule in protocol.checkpoints:
        if rule.triggered_only or rule.at or not _condition_holds(rule.condition, facts):
            continue
        anchor_day = _anchor_date(rule.anchor, facts)
        if anchor_day is None:
            continue
        start, aim, end = _window(anchor_day, rule.earliest, rule.target, rule.latest, facts.procedure_date)
        item = PlannedCheckpoint(
            code=rule.id,
            sequence=1,
            title=rule.title,
            audience=rule.audience,
            anchor=rule.anchor,
            earliest=start,
            target=aim,
            latest=end,
            source=rule.source,
            reminder_every_days=rule.reminder_every_days,
            reminder_max=rule.reminder_max,
            calendar=rule.calendar,
            priority=priority and rule.id in protocol.priority_checkpoints,
        )
        planned.append(item)
        by_code[rule.id] = item
    for rule in protocol.checkpoints:
        if not rule.at or not _condition_holds(rule.condition, facts):
            continue
        for sequence, other in enumerate((by_code[code] for code in rule.at if code in by_code), start=1):
            planned.append(
                PlannedCheckpoint(
                    code=rule.id,
                    sequence=sequence,
                    title=rule.title,
                    audience=rule.audience,
                    anchor=other.anchor,
                    earliest=other.earliest,
                    target=other.target,
                    latest=other.latest,
                    source=rule.source,
                    reminder_every_days=rule.reminder_every_days,
                    reminder_max=rule.reminder_max,
                    calendar=rule.calendar,
                )
            )
    for series in protocol.intensification:
        if series.tier != tier:
            continue
        anchor_day = _anchor_date(series.anchor, facts)
        if anchor_day is None:
            continue
        for sequence, day in enumerate(series.days, start=1):
            start, aim, end = _window(anchor_day, day + series.earliest, day, day + series.latest, facts.procedure_date)
            planned.append(
                PlannedCheckpoint(
                    code=series.id,
                    sequence=sequence,
                    title=series.title,
                    audience=series.audience,
                    anchor=series.anchor,
                    earliest=start,
                    target=aim,
                    latest=end,
                    source=series.source,
                    reminder_every_days=series.reminder_every_days,
                    reminder_max=series.reminder_max,
                )
            )
    planned.sort(key=lambda item: (item.target, item.code, item.sequence))
    return planned
