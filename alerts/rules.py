"""Red-flag and trend rules as data (the protocol file's rule sections) and one pure evaluation.

`evaluate(report, history, rules)` is the only code path that turns answers into findings: the
check-in form, the coordinator's admin entry, the REST API and FHIR all call it through
`alerts.reports.submit_report`. No ORM here.
"""

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from patients.protocol import Protocol, ProtocolError, get_protocol

TIER_ORDER = {"routine": 1, "urgent": 2, "emergency": 3}
SO_ANSWERS = ("yes", "no", "unsure")


@dataclass(frozen=True)
class RedFlag:
    id: str
    question: str
    tier: str
    action: str
    source: str
    imaging_review: bool = False
    # Other yes/no answers that count as this red flag (e.g. the §4 falls question for RF-10), with
    # the source of that rule.
    also_when_yes: tuple[str, ...] = ()
    also_source: str = ""


@dataclass(frozen=True)
class SecondOpinion:
    id: str
    question: str
    answers: tuple[str, ...]  # the answers that fire it (SO-2: "no" and "unsure", spec v0.2)
    tier: str
    action: str
    source: str


@dataclass(frozen=True)
class ClinicianFinding:
    """A review item a clinician enters (spec §1: SO-3 and the revision considerations), never scored
    from patient answers; `opens` are the items opened with it (a revision needs a bone-health
    re-assessment first)."""

    id: str
    label: str
    tier: str
    action: str
    source: str
    opens: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rules:
    version: str
    red_flags: tuple[RedFlag, ...]
    second_opinion: tuple[SecondOpinion, ...]
    pain_rise: dict
    pain_not_improving: dict
    early_warning: dict
    free_text: dict
    responses: dict
    wording: dict
    clinician_findings: tuple[ClinicianFinding, ...] = ()

    def clinician_finding(self, code: str) -> ClinicianFinding | None:
        return next((item for item in self.clinician_findings if item.id == code), None)

    def red_flag(self, code: str) -> RedFlag:
        return next(flag for flag in self.red_flags if flag.id == code)

    @property
    def codes(self) -> set[str]:
        return (
            {flag.id for flag in self.red_flags}
            | {so.id for so in self.second_opinion}
            | {item.id for item in self.clinician_findings}
            | {
                self.pain_not_improving["id"],
                self.early_warning["id"],
                self.free_text["id"],
            }
        )


@dataclass(frozen=True)
class Report:
    """One symptom report, as the rules read it."""

    day: int  # days since the procedure
    pain_now: int | None  # None: not answered (a partial report); the pain rules then do not run
    pain_average_24h: int | None = None
    red_flags: frozenset[str] = frozenset()
    second_opinion: dict[str, str] = field(default_factory=dict)  # "SO-2": "no"
    reported_at: datetime | None = None
    answers: dict[str, bool | None] = field(default_factory=dict)  # the other yes/no answers, e.g. fell_since_last
    free_text: str = ""  # "Anything else…": the patient's own words, expected symptoms included


@dataclass(frozen=True)
class PainPoint:
    day: int
    pain_now: int


@dataclass(frozen=True)
class Finding:
    code: str
    tier: str
    kind: str  # "alert" (a clinician is paged), "review" (a clinician task), "checkin" (an extra check-in)
    action: str
    source: str
    evidence: dict = field(default_factory=dict)
    imaging_review: bool = False


# --- Loading ------------------------------------------------------------------------------------


def _need(entry: dict, key: str, where: str, kind: type | tuple[type, ...]):
    if key not in entry:
        raise ProtocolError(f"{where}: missing '{key}'")
    if not isinstance(entry[key], kind) or (kind is int and isinstance(entry[key], bool)):
        raise ProtocolError(f"{where}: '{key}' has the wrong type")
    return entry[key]


def _tier(value: str, where: str) -> str:
    if value not in TIER_ORDER:
        raise ProtocolError(f"{where}: unknown tier '{value}' (expected one of {', '.join(TIER_ORDER)})")
    return value


# The keys of each single-table rule section, with their types.
SECTION_KEYS: dict[str, dict[str, type]] = {
    "pain_rise": {"id": str, "min_rise": int, "rebound_pain_at_least": int, "source": str},
    "pain_not_improving": {
        "id": str,
        "tier": str,
        "from_day": int,
        "pain_at_least": int,
        "min_improvement_points": int,
        "min_improvement_fraction": float,
        "no_baseline_repeat_days": int,
        "action": str,
        "imaging_review": bool,
        "source": str,
    },
    "early_warning": {
        "id": str,
        "tier": str,
        "from_day": int,
        "to_day": int,
        "pain_at_least": int,
        "action": str,
        "source": str,
    },
    "free_text": {"id": str, "tier": str, "action": str, "source": str},
    "responses": {"id": str, "routine_working_days": int, "source": str},
    "wording": {
        "emergency": str,
        "emergency_no_number": str,
        "urgent": str,
        "urgent_later": str,
        "routine": str,
        "worse": str,
        "source": str,
    },
}

# The placeholders each computed wording must carry (filled from the clinic's data).
WORDING_FIELDS = {"emergency": ("number",), "urgent_later": ("day", "time"), "routine": ("day",)}


def parse_rules(protocol: Protocol) -> Rules:
    """Validate the rule sections of a protocol file; errors name the file version and the entry."""
    data, name = protocol.raw, f"protocol {protocol.version}"
    flags, opinions = _red_flags(data, name), _second_opinions(data, name)
    sections = {section: _section(data, section, keys, name) for section, keys in SECTION_KEYS.items()}
    if sections["pain_rise"]["id"] not in {flag.id for flag in flags}:
        raise ProtocolError(f"{name} [pain_rise]: id '{sections['pain_rise']['id']}' is not a red flag")
    for key, fields in WORDING_FIELDS.items():
        missing = [f"{{{field}}}" for field in fields if f"{{{field}}}" not in sections["wording"][key]]
        if missing:
            raise ProtocolError(f"{name} [wording] {key}: must contain {', '.join(missing)}")
    entered = _clinician_findings(data, name)
    return Rules(
        version=protocol.version, red_flags=flags, second_opinion=opinions, clinician_findings=entered, **sections
    )


def _red_flags(data: dict, name: str) -> tuple[RedFlag, ...]:
    flags, seen = [], set()
    for index, entry in enumerate(_need(data, "red_flags", name, list)):
        where = f"{name} red_flags[{index}] ({entry.get('id', '?')})"
        flag = RedFlag(
            id=_need(entry, "id", where, str),
            question=_need(entry, "question", where, str),
            tier=_tier(_need(entry, "tier", where, str), where),
            action=_need(entry, "action", where, str),
            source=_need(entry, "source", where, str),
            imaging_review=bool(entry.get("imaging_review", False)),
            also_when_yes=tuple(entry.get("also_when_yes", ())),
            also_source=entry.get("also_source", ""),
        )
        if flag.also_when_yes and not flag.also_source:
            raise ProtocolError(f"{where}: 'also_when_yes' needs its 'also_source'")
        if flag.id in seen:
            raise ProtocolError(f"{name}: duplicate red flag id '{flag.id}'")
        seen.add(flag.id)
        flags.append(flag)
    return tuple(flags)


def _second_opinions(data: dict, name: str) -> tuple[SecondOpinion, ...]:
    opinions = []
    for index, entry in enumerate(data.get("second_opinion", [])):
        where = f"{name} second_opinion[{index}] ({entry.get('id', '?')})"
        answers = tuple(_need(entry, "answers", where, list))
        if not answers or any(answer not in SO_ANSWERS for answer in answers):
            raise ProtocolError(f"{where}: answers must be taken from {', '.join(SO_ANSWERS)}")
        opinions.append(
            SecondOpinion(
                id=_need(entry, "id", where, str),
                question=_need(entry, "question", where, str),
                answers=answers,
                tier=_tier(_need(entry, "tier", where, str), where),
                action=_need(entry, "action", where, str),
                source=_need(entry, "source", where, str),
            )
        )
    return tuple(opinions)


def _clinician_findings(data: dict, name: str) -> tuple[ClinicianFinding, ...]:
    items = []
    for index, entry in enumerate(data.get("clinician_findings", [])):
        where = f"{name} clinician_findings[{index}] ({entry.get('id', '?')})"
        items.append(
            ClinicianFinding(
                id=_need(entry, "id", where, str),
                label=_need(entry, "label", where, str),
                tier=_tier(_need(entry, "tier", where, str), where),
                action=_need(entry, "action", where, str),
                source=_need(entry, "source", where, str),
                opens=tuple(entry.get("opens", ())),
            )
        )
    known = {item.id for item in items}
    for item in items:
        if set(item.opens) - known or item.id in item.opens:
            raise ProtocolError(f"{name} clinician_findings ({item.id}): 'opens' names an unknown item or itself")
    return tuple(items)


def _section(data: dict, section: str, keys: dict[str, type], name: str) -> dict:
    entry = _need(data, section, name, dict)
    values = {key: _need(entry, key, f"{name} [{section}]", kind) for key, kind in keys.items()}
    if "tier" in keys:
        _tier(values["tier"], f"{name} [{section}]")
    return values


@cache
def get_rules(version: str) -> Rules:
    return parse_rules(get_protocol(version))


# --- Evaluation ---------------------------------------------------------------------------------


def _alert(flag: RedFlag, **evidence) -> Finding:
    return Finding(
        code=flag.id,
        tier=flag.tier,
        kind="alert",
        action=flag.action,
        source=flag.source,
        evidence=evidence,
        imaging_review=flag.imaging_review,
    )


def _pain_rise(report: Report, history: list[PainPoint], rules: Rules) -> dict | None:
    if not history or report.pain_now is None:
        return None
    min_rise = rules.pain_rise["min_rise"]
    last, best = history[-1], min(history, key=lambda point: point.pain_now)
    if report.pain_now - last.pain_now >= min_rise:
        return {"trend": "rise since last report", "previous": last.pain_now, "now": report.pain_now}
    rebound = report.pain_now >= rules.pain_rise["rebound_pain_at_least"]  # spec v0.2: NRS >= 4 and >= 2 above best
    if rebound and report.pain_now - best.pain_now >= min_rise:
        return {"trend": "rebound from best score", "best": best.pain_now, "now": report.pain_now}
    return None


def _not_improving(report: Report, history: list[PainPoint], baseline: int | None, rules: Rules) -> dict | None:
    rule = rules.pain_not_improving
    if report.pain_now is None or report.day < rule["from_day"] or report.pain_now < rule["pain_at_least"]:
        return None
    if baseline is not None:
        improvement = baseline - report.pain_now
        fraction = improvement / baseline if baseline else 0.0
        if improvement < rule["min_improvement_points"] or fraction < rule["min_improvement_fraction"]:
            return {"baseline": baseline, "now": report.pain_now, "improvement": improvement}
        return None
    earlier = [
        point
        for point in history
        if point.pain_now >= rule["pain_at_least"] and report.day - point.day >= rule["no_baseline_repeat_days"]
    ]
    if earlier:
        return {
            "baseline": None,
            "earlier_day": earlier[-1].day,
            "earlier": earlier[-1].pain_now,
            "now": report.pain_now,
        }
    return None


def evaluate(report: Report, history: list[PainPoint], rules: Rules, *, baseline: int | None = None) -> list[Finding]:
    """Findings for one report, given the earlier reports' pain (oldest first) and the baseline.

    Answer rules fire on a "yes"; RF-07 also fires from the pain trend; PAIN_NOT_IMPROVING reads the
    baseline from day 42; the day-14 early warning adds a check-in. Unknown codes are refused by
    the caller before this runs.
    """
    findings: list[Finding] = []
    for flag in rules.red_flags:
        trend = _pain_rise(report, history, rules) if flag.id == rules.pain_rise["id"] else None
        also = {name: "yes" for name in flag.also_when_yes if report.answers.get(name) is True}
        if flag.id in report.red_flags or trend or also:
            evidence = {"answer": "yes"} if flag.id in report.red_flags else {}
            if also:
                evidence |= {"also": also, "also_source": flag.also_source}
            findings.append(_alert(flag, **evidence, **(trend or {})))
    for opinion in rules.second_opinion:
        answer = report.second_opinion.get(opinion.id)
        if answer in opinion.answers:
            evidence = {"answer": answer}
            findings.append(Finding(opinion.id, opinion.tier, "review", opinion.action, opinion.source, evidence))
    stalled = _not_improving(report, history, baseline, rules)
    if stalled:
        rule = rules.pain_not_improving
        findings.append(
            Finding(rule["id"], rule["tier"], "review", rule["action"], rule["source"], stalled, rule["imaging_review"])
        )
    if report.free_text.strip():
        rule = rules.free_text
        evidence = {"characters": len(report.free_text.strip())}  # the words stay on the report and its review
        findings.append(Finding(rule["id"], rule["tier"], "review", rule["action"], rule["source"], evidence))
    warning = rules.early_warning
    in_window = warning["from_day"] <= report.day <= warning["to_day"]
    if in_window and report.pain_now is not None and report.pain_now >= warning["pain_at_least"]:
        findings.append(
            Finding(
                warning["id"],
                warning["tier"],
                "checkin",
                warning["action"],
                warning["source"],
                {"day": report.day, "now": report.pain_now},
            )
        )
    return findings


def highest_tier(findings: list[Finding]) -> str | None:
    tiers = [finding.tier for finding in findings if finding.kind == "alert"] or [f.tier for f in findings]
    return max(tiers, key=TIER_ORDER.__getitem__) if tiers else None
