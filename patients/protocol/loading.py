"""Reading a protocol file: parse, validate every section, and cache one Protocol per version."""

import tomllib
from datetime import time
from functools import cache
from pathlib import Path

from .entries import CheckpointRule, Protocol
from .operations import (
    parse_checkin,
    parse_escalation,
    parse_intervals,
    parse_outcomes,
    parse_patient_messages,
    parse_roles,
    parse_second_opinion_information,
)
from .parsing import parse_checkpoint, parse_factor, parse_intensification, parse_reassessment, parse_tiers
from .validation import entries, names, require, unique
from .vocabulary import PROTOCOL_DIR, TIERS, ProtocolError


def _reminder_time(data: dict, name: str) -> time:
    delivery = require(data, "delivery", name, dict)
    try:
        return time.fromisoformat(require(delivery, "reminder_time", f"{name} [delivery]", str))
    except ValueError:
        raise ProtocolError(f"{name} [delivery]: reminder_time must be HH:MM") from None


def _checkpoints(data: dict, name: str) -> tuple[CheckpointRule, ...]:
    checkpoints = tuple(parse_checkpoint(entry, where) for entry, where in entries(data, "checkpoints", name))
    unique(checkpoints, name, "checkpoint")
    fixed = {rule.id for rule in checkpoints if rule.target is not None}
    for rule in checkpoints:
        for other in rule.at:
            if other not in fixed:
                raise ProtocolError(
                    f"{name} checkpoint {rule.id}: 'at' names '{other}', which has no window of its own"
                )
    return checkpoints


def _schedule(data: dict, name: str) -> dict:
    """The risk and schedule sections: factors, tiers, checkpoints, intensification, priority."""
    risk = require(data, "risk", name, dict)
    factors = tuple(parse_factor(entry, where) for entry, where in entries(risk, "factors", name, table="risk"))
    unique(factors, name, "risk factor")
    checkpoints = _checkpoints(data, name)
    series = tuple(
        parse_intensification(entry, where) for entry, where in entries(data, "intensification", name, required=False)
    )
    unique(series, name, "intensification")
    priority, where = data.get("priority", {}), f"{name} [priority]"
    return {
        "tl_junction_levels": frozenset(require(risk, "tl_junction_levels", f"{name} [risk]", list)),
        "medication_deadline_days": require(risk, "medication_deadline_days_from_fracture", f"{name} [risk]", int),
        "factors": factors,
        "tiers": parse_tiers(risk, name),
        "reassessment": parse_reassessment(risk, name),
        "checkpoints": checkpoints,
        "intensification": series,
        "priority_tier": priority.get("tier", "high"),
        "priority_checkpoints": frozenset(
            names(priority, "checkpoints", where, {rule.id for rule in checkpoints}, "checkpoint")
            if "checkpoints" in priority
            else ()
        ),
    }


def _operations(data: dict, name: str, schedule: dict) -> dict:
    """How the software acts on the protocol: roles, outcomes, escalation, intervals, check-ins."""
    checkpoints = {rule.id: rule for rule in schedule["checkpoints"]}
    codes = frozenset(checkpoints) | {series.id for series in schedule["intensification"]}
    return {
        "roles": parse_roles(data, name, checkpoints),
        "outcomes": parse_outcomes(data, name, frozenset(checkpoints)),
        "escalation": parse_escalation(data, name),
        "intervals": parse_intervals(data, name),
        "checkin": parse_checkin(data, name, codes),
        "second_opinion_information": parse_second_opinion_information(data, name),
        "patient_messages": parse_patient_messages(data, name, codes),
    }


def parse_protocol(data: dict, *, name: str = "protocol") -> Protocol:
    """Validate a parsed protocol document; every error names the file and the entry."""
    version = require(data, "version", name, str)
    reminder_time = _reminder_time(data, name)
    schedule = _schedule(data, name)
    if schedule["priority_tier"] not in TIERS:
        raise ProtocolError(f"{name} [priority]: unknown tier '{schedule['priority_tier']}'")
    return Protocol(
        version=version,
        title=data.get("title", version),
        reminder_time=reminder_time,
        **schedule,
        **_operations(data, name, schedule),
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


@cache
def _versions() -> tuple[str, ...]:
    """The protocol files shipped with the code, read once per process (every new Clinic instance
    asks for the latest as its default)."""
    return tuple(sorted(path.stem for path in PROTOCOL_DIR.glob("*.toml")))


def available_versions() -> list[str]:
    return list(_versions())


def latest_version() -> str:
    return _versions()[-1]
