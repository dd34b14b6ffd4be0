"""Checks shared by every section of a protocol file; each error names the file and the entry."""

from typing import Any

from .vocabulary import DESIGN, SOURCE_KEY, SPEC_KEYS, ProtocolError


def require(entry: dict, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(entry, dict):
        raise ProtocolError(f"{where}: expected a table, got {type(entry).__name__}")
    if key not in entry:
        raise ProtocolError(f"{where}: missing '{key}'")
    value = entry[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


def positive(entry: dict, key: str, where: str) -> int:
    value = require(entry, key, where, int)
    if value < 1:
        raise ProtocolError(f"{where}: '{key}' must be at least 1, got {value}")
    return value


def check_choice(value: str, choices: tuple[str, ...] | frozenset[str], where: str, key: str) -> str:
    if value not in choices:
        expected = ", ".join(choices if isinstance(choices, tuple) else sorted(choices))
        raise ProtocolError(f"{where}: unknown {key} '{value}' (expected one of {expected})")
    return value


def check_window(earliest: int, target: int, latest: int, where: str) -> None:
    if not earliest <= target <= latest:
        raise ProtocolError(
            f"{where}: window must satisfy earliest <= target <= latest, got {earliest}/{target}/{latest}"
        )


def source(entry: dict, where: str) -> str:
    """The entry's `source`: spec keys (S0, S1, E1…E21) and/or [DESIGN], with words around them."""
    text = require(entry, "source", where, str)
    named = set(SOURCE_KEY.findall(text))
    if named - SPEC_KEYS:
        raise ProtocolError(f"{where}: source cites {', '.join(sorted(named - SPEC_KEYS))}, not a key of the spec")
    if not named and DESIGN not in text:
        raise ProtocolError(f"{where}: source '{text}' names neither a spec key nor {DESIGN}")
    return text


def names(entry: dict, key: str, where: str, known: set[str] | frozenset[str], what: str) -> tuple[str, ...]:
    """A list of ids under `key`, each one of `known`."""
    values = require(entry, key, where, list)
    for value in values:
        if not isinstance(value, str) or value not in known:
            raise ProtocolError(f"{where}: '{key}' names unknown {what} '{value}'")
    return tuple(values)


def entries(data: dict, key: str, name: str, *, required: bool = True, table: str = "") -> list[tuple[dict, str]]:
    """Each table of the array `key` (inside `table`, if given), with the label errors use: file,
    position and id."""
    where, path = (f"{name} [{table}]", f"{table}.{key}") if table else (name, key)
    items = require(data, key, where, list) if required else data.get(key, [])
    return [
        (entry, f"{name} {path}[{index}] ({entry.get('id', '?') if isinstance(entry, dict) else '?'})")
        for index, entry in enumerate(items)
    ]


def unique(items, name: str, label: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ProtocolError(f"{name}: duplicate {label} id '{item.id}'")
        seen.add(item.id)


def complete(found: set[str], expected: tuple[str, ...], name: str, section: str) -> None:
    """Every name the software asks for has its entry."""
    missing = [item for item in expected if item not in found]
    if missing:
        raise ProtocolError(f"{name} [{section}]: no entry for {', '.join(repr(item) for item in missing)}")
