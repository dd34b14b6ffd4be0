"""Parsers of the sections that say how the software acts on the protocol: the checkpoint that
plays each named role, the outcome fields each checkpoint takes, the default escalation of each
alert tier, named intervals (link lifetimes, review and check-in delays, a recent DXA), check-in
invitations, and the findings that show second-opinion information."""

from datetime import timedelta

from .entries import (
    CheckinPolicy,
    CheckpointRule,
    Escalation,
    EscalationStep,
    Interval,
    Outcome,
    PatientMessagePolicy,
    Role,
    SecondOpinionInformation,
)
from .validation import check_choice, complete, entries, names, positive, require, source, unique
from .vocabulary import ALERT_TIERS, INTERVALS, NOTIFY_TARGETS, OUTCOME_FIELDS, ROLES, ProtocolError


def parse_roles(data: dict, name: str, checkpoints: dict[str, CheckpointRule]) -> tuple[Role, ...]:
    roles = []
    for entry, where in entries(data, "roles", name):
        role = Role(
            id=check_choice(require(entry, "id", where, str), ROLES, where, "role"),
            checkpoint=check_choice(
                require(entry, "checkpoint", where, str), frozenset(checkpoints), where, "checkpoint"
            ),
            label=require(entry, "label", where, str),
            source=source(entry, where),
        )
        if role.id == "imaging_review" and not checkpoints[role.checkpoint].triggered_only:
            raise ProtocolError(f"{where}: checkpoint '{role.checkpoint}' is not triggered_only")
        roles.append(role)
    unique(roles, name, "role")
    complete({role.id for role in roles}, ROLES, name, "roles")
    return tuple(roles)


def _outcome(entry: dict, where: str, codes: frozenset[str]) -> Outcome:
    fields = names(entry, "fields", where, frozenset(OUTCOME_FIELDS), "outcome field")
    if not fields or len(set(fields)) != len(fields):
        raise ProtocolError(f"{where}: 'fields' must name at least one outcome field, each once")
    required = entry.get("required")
    if required is not None and (not isinstance(required, str) or required not in fields):
        raise ProtocolError(f"{where}: 'required' must be one of its fields, got '{required}'")
    return Outcome(
        id=require(entry, "id", where, str),
        checkpoint=check_choice(require(entry, "checkpoint", where, str), codes, where, "checkpoint"),
        fields=fields,
        source=source(entry, where),
        required=required,
        required_message=require(entry, "required_message", where, str) if required else "",
    )


def parse_outcomes(data: dict, name: str, codes: frozenset[str]) -> tuple[Outcome, ...]:
    outcomes = tuple(_outcome(entry, where, codes) for entry, where in entries(data, "outcomes", name))
    unique(outcomes, name, "outcome")
    seen: set[str] = set()
    for outcome in outcomes:
        if outcome.checkpoint in seen:
            raise ProtocolError(f"{name} outcome {outcome.id}: checkpoint '{outcome.checkpoint}' has two outcomes")
        seen.add(outcome.checkpoint)
    return outcomes


def _steps(entry: dict, where: str) -> tuple[EscalationStep, ...]:
    steps, previous = [], -1
    for index, step in enumerate(require(entry, "steps", where, list)):
        step_where = f"{where} steps[{index}]"
        minutes = require(step, "after_minutes", step_where, int)
        if minutes <= previous or (index == 0 and minutes != 0):
            raise ProtocolError(f"{step_where}: after_minutes must start at 0 and increase, got {minutes}")
        notify = check_choice(require(step, "notify", step_where, str), NOTIFY_TARGETS, step_where, "notify")
        steps.append(EscalationStep(after_minutes=minutes, notify=notify))
        previous = minutes
    if not steps:
        raise ProtocolError(f"{where}: 'steps' needs at least one step")
    return tuple(steps)


def parse_escalation(data: dict, name: str) -> tuple[Escalation, ...]:
    policies = tuple(
        Escalation(
            id=require(entry, "id", where, str),
            tier=check_choice(require(entry, "tier", where, str), ALERT_TIERS, where, "tier"),
            steps=_steps(entry, where),
            repeat_minutes=positive(entry, "repeat_minutes", where),
            source=source(entry, where),
        )
        for entry, where in entries(data, "escalation", name)
    )
    unique(policies, name, "escalation")
    tiers = [policy.tier for policy in policies]
    if len(tiers) != len(set(tiers)):
        raise ProtocolError(f"{name} [escalation]: a tier has more than one policy")
    complete(set(tiers), ALERT_TIERS, name, "escalation")
    return policies


def _interval(entry: dict, where: str) -> Interval:
    units = [unit for unit in ("days", "hours") if unit in entry]
    if len(units) != 1:
        raise ProtocolError(f"{where}: give exactly one of 'days' or 'hours'")
    interval = Interval(
        id=check_choice(require(entry, "id", where, str), INTERVALS, where, "interval"),
        label=require(entry, "label", where, str),
        length=timedelta(**{units[0]: positive(entry, units[0], where)}),
        source=source(entry, where),
    )
    if interval.id == "recent_dxa" and units != ["days"]:
        raise ProtocolError(f"{where}: 'recent_dxa' is counted in days")
    return interval


def parse_intervals(data: dict, name: str) -> tuple[Interval, ...]:
    intervals = tuple(_interval(entry, where) for entry, where in entries(data, "intervals", name))
    unique(intervals, name, "interval")
    complete({interval.id for interval in intervals}, INTERVALS, name, "intervals")
    return intervals


def parse_checkin(data: dict, name: str, codes: frozenset[str]) -> CheckinPolicy:
    entry = require(data, "checkin", name, dict)
    where = f"{name} [checkin] ({entry.get('id', '?')})"
    return CheckinPolicy(
        id=require(entry, "id", where, str),
        checkpoints=frozenset(names(entry, "checkpoints", where, codes, "checkpoint")),
        link_valid_days=positive(entry, "link_valid_days", where),
        resend_after_days=positive(entry, "resend_after_days", where),
        call_after_days=positive(entry, "call_after_days", where),
        invitations=positive(entry, "invitations", where),
        source=source(entry, where),
    )


def rule_ids(data: dict) -> frozenset[str]:
    """Finding codes the rule sections define (they are validated in full by alerts.rules)."""
    tables = [*data.get("red_flags", []), *data.get("second_opinion", [])]
    tables += [data.get(section, {}) for section in ("pain_not_improving", "early_warning")]
    return frozenset(table["id"] for table in tables if isinstance(table, dict) and isinstance(table.get("id"), str))


def parse_second_opinion_information(data: dict, name: str) -> SecondOpinionInformation:
    entry = require(data, "second_opinion_information", name, dict)
    where = f"{name} [second_opinion_information] ({entry.get('id', '?')})"
    return SecondOpinionInformation(
        id=require(entry, "id", where, str),
        findings=frozenset(names(entry, "findings", where, rule_ids(data), "finding")),
        source=source(entry, where),
    )


def parse_patient_messages(data: dict, name: str, codes: frozenset[str]) -> PatientMessagePolicy:
    entry = require(data, "patient_messages", name, dict)
    where = f"{name} [patient_messages] ({entry.get('id', '?')})"
    return PatientMessagePolicy(
        id=require(entry, "id", where, str),
        weekly_cap=positive(entry, "weekly_cap", where),
        gather_minutes=positive(entry, "gather_minutes", where),
        uncapped=frozenset(names(entry, "uncapped", where, codes | rule_ids(data), "checkpoint or finding")),
        source=source(entry, where),
    )
