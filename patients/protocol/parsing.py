"""Parsers of the risk and schedule sections: risk factors, tier thresholds, checkpoints and the
intensification series of each tier."""

from .entries import CheckpointRule, Condition, Intensification, ReassessmentRules, RiskFactor, TierRules
from .validation import check_choice, check_window, require, source
from .vocabulary import ANCHORS, AUDIENCES, CONDITIONS, FACTS, OPERATORS, PATIENT_FACING, TIERS, ProtocolError


def _reminders(entry: dict, where: str, audience: str) -> dict:
    if audience not in PATIENT_FACING:
        return {}
    every = require(entry, "reminder_every_days", where, int)
    most = require(entry, "reminder_max", where, int)
    if every < 1 or most < 1:
        raise ProtocolError(f"{where}: reminder_every_days and reminder_max must be at least 1")
    return {"reminder_every_days": every, "reminder_max": most}


def _window(entry: dict, where: str) -> dict:
    earliest = require(entry, "earliest", where, int)
    target = require(entry, "target", where, int)
    latest = require(entry, "latest", where, int)
    check_window(earliest, target, latest, where)
    return {"earliest": earliest, "target": target, "latest": latest}


def parse_tiers(risk: dict, name: str) -> TierRules:
    where = f"{name} [risk.tiers]"
    tier_data = require(risk, "tiers", f"{name} [risk]", dict)
    return TierRules(**{key: require(tier_data, key, where, (int, str)) for key in TierRules.__dataclass_fields__})


MEDICATION_WITHOUT_START_DATE = ("not_recorded", "no_medication")


def parse_reassessment(risk: dict, name: str) -> ReassessmentRules:
    entry = require(risk, "reassessment", f"{name} [risk]", dict)
    where = f"{name} [risk.reassessment] ({entry.get('id', '?')})"
    return ReassessmentRules(
        id=require(entry, "id", where, str),
        lower_needs_confirmation=require(entry, "lower_needs_confirmation", where, bool),
        medication_without_start_date=check_choice(
            require(entry, "medication_without_start_date", where, str),
            MEDICATION_WITHOUT_START_DATE,
            where,
            "medication_without_start_date",
        ),
        source=source(entry, where),
    )


def parse_factor(entry: dict, where: str) -> RiskFactor:
    conditions = []
    for index, cond in enumerate(require(entry, "when", where, list)):
        cond_where = f"{where} when[{index}]"
        fact = check_choice(require(cond, "fact", cond_where, str), FACTS, cond_where, "fact")
        op = check_choice(require(cond, "op", cond_where, str), tuple(OPERATORS), cond_where, "op")
        if "value" not in cond:
            raise ProtocolError(f"{cond_where}: missing 'value'")
        conditions.append(Condition(fact=fact, op=op, value=cond["value"]))
    if not conditions:
        raise ProtocolError(f"{where}: 'when' needs at least one condition")
    return RiskFactor(
        id=require(entry, "id", where, str),
        kind=check_choice(require(entry, "kind", where, str), ("pain", "fracture"), where, "kind"),
        label=require(entry, "label", where, str),
        points=require(entry, "points", where, int),
        when=tuple(conditions),
        source=source(entry, where),
    )


def parse_checkpoint(entry: dict, where: str) -> CheckpointRule:
    audience = check_choice(require(entry, "audience", where, str), AUDIENCES, where, "audience")
    common = {
        "id": require(entry, "id", where, str),
        "title": require(entry, "title", where, str),
        "audience": audience,
        "source": source(entry, where),
        "calendar": bool(entry.get("calendar", False)),
        **patient_wording(entry, where, audience),
    }
    if "condition" in entry:
        common["condition"] = check_choice(require(entry, "condition", where, str), CONDITIONS, where, "condition")
    if entry.get("triggered_only"):
        return CheckpointRule(**common, **_window(entry, where), triggered_only=True)
    if "at" in entry:
        return CheckpointRule(**common, at=tuple(require(entry, "at", where, list)))
    anchor = check_choice(require(entry, "anchor", where, str), ANCHORS, where, "anchor")
    return CheckpointRule(**common, anchor=anchor, **_window(entry, where), **_reminders(entry, where, audience))


def parse_intensification(entry: dict, where: str) -> Intensification:
    audience = check_choice(require(entry, "audience", where, str), AUDIENCES, where, "audience")
    days = require(entry, "days", where, list)
    if not days or any(not isinstance(day, int) or day < 1 for day in days) or days != sorted(set(days)):
        raise ProtocolError(f"{where}: 'days' must be a non-empty, increasing list of days >= 1")
    earliest = require(entry, "earliest", where, int)
    latest = require(entry, "latest", where, int)
    check_window(earliest, 0, latest, where)
    return Intensification(
        id=require(entry, "id", where, str),
        tier=check_choice(require(entry, "tier", where, str), TIERS, where, "tier"),
        title=require(entry, "title", where, str),
        anchor=check_choice(require(entry, "anchor", where, str), ANCHORS, where, "anchor"),
        days=tuple(days),
        earliest=earliest,
        latest=latest,
        audience=audience,
        source=source(entry, where),
        **_reminders(entry, where, audience),
        **patient_wording(entry, where, audience),
    )


def patient_wording(entry: dict, where: str, audience: str) -> dict[str, str]:
    """The patient's title and sentence: required wherever the patient is written to (every audience
    but coordinator_task), so staff wording never reaches a patient."""
    if audience == "coordinator_task" and "patient_title" not in entry:
        return {}
    return {
        "patient_title": require(entry, "patient_title", where, str),
        "patient_text": require(entry, "patient_text", where, str),
    }
