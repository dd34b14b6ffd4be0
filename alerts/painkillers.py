"""Painkillers are reported as a set (paracetamol and codeine: non-opioid and opioid). Older callers
send one value as a string; it is read as a set of one. "None" cannot go with a painkiller."""

from django.core.exceptions import ValidationError

NONE = "none"


def as_list(value) -> list[str]:
    """One value ("opioid"), none ("" or None) or several (a list), as a sorted list without repeats."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [value]
    return sorted(set(value))


def validate_painkillers(values: list[str]) -> None:
    if NONE in values and len(values) > 1:
        raise ValidationError("Choose “None” or the painkillers taken, not both.")
