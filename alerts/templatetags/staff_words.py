"""Words for staff screens: temperatures in the clinic's unit, dates and times in the clinic's time zone
and date style, and sentences without the spec references (those go in a "why" disclosure)."""

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import phonenumbers
from django import template
from django.core.exceptions import FieldDoesNotExist
from django.utils.dateformat import format as date_format

register = template.Library()

# Where a clinic reads Fahrenheit, from the country of its phone number; everywhere else Celsius. [DESIGN]
FAHRENHEIT_REGIONS = frozenset({"US", "LR", "BS", "BZ", "KY", "PW", "FM", "MH"})
TEMPERATURE = re.compile(r"(\d+(?:\.\d+)?)\s?°F")
_REF = r"(?:per|spec)\s+(?:§\s?\d+(?:\.\d+)?|[A-Z]\d{1,2}(?:;\s?[A-Z]\d{1,2})*)"
REFERENCE = re.compile(rf"\s*\({_REF}\)|\s*\b{_REF}|\s*\[DESIGN\]")
DATE_STYLES = {True: ("M j, Y", "M j, Y, g:i a"), False: ("j M Y", "j M Y, H:i")}


def _region(clinic) -> str:
    if clinic is None:
        return ""
    if not hasattr(clinic, "_kf_region"):
        try:
            clinic._kf_region = phonenumbers.region_code_for_number(phonenumbers.parse(str(clinic.phone), None)) or ""
        except phonenumbers.NumberParseException:
            clinic._kf_region = ""
    return clinic._kf_region


def _american(clinic) -> bool:
    return _region(clinic) in FAHRENHEIT_REGIONS


@register.filter
def for_staff(text, clinic=None) -> str:
    """`text` without its source references, temperatures in the clinic's unit."""
    text = REFERENCE.sub("", str(text or ""))
    if clinic is not None and not _american(clinic):
        text = TEMPERATURE.sub(lambda m: f"{(float(m[1]) - 32) * 5 / 9:.1f} °C", text)
    return text.strip()


@register.filter
def references(text) -> str:
    """The source references `for_staff` leaves out of `text`, for the "why" disclosure."""
    found = [match.strip(" ()") for match in REFERENCE.findall(str(text or ""))]
    return "; ".join(found)


@register.filter
def clinic_date(value, clinic=None) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(ZoneInfo(clinic.time_zone)) if clinic is not None else value
        value = value.date()
    return date_format(value, DATE_STYLES[_american(clinic)][0]) if isinstance(value, date) else str(value)


@register.filter
def clinic_time(value, clinic=None) -> str:
    """A moment in the clinic's time zone and date style."""
    if value in (None, ""):
        return ""
    local = value.astimezone(ZoneInfo(clinic.time_zone)) if clinic is not None else value
    return date_format(local, DATE_STYLES[_american(clinic)][1])


@register.simple_tag
def sort_link(query, section: str, column: str, current: str) -> str:
    """The query string sorting `section` by `column` (ascending, or descending when it already is),
    keeping every other filter and going back to that section's first page."""
    params = query.copy()
    params[f"{section}_sort"] = f"-{column}" if current == column else column
    params.pop(f"{section}_page", None)
    return "?" + params.urlencode()


@register.simple_tag
def page_link(query, section: str, number: int) -> str:
    params = query.copy()
    params[f"{section}_page"] = number
    return "?" + params.urlencode()


@register.filter
def fact_labels(names) -> str:
    """Risk facts (model field names) as the labels staff see on the patient and procedure forms."""
    from patients.models import Patient, Procedure, TreatedLevel

    labels = []
    for name in names or ():
        label = name.replace("_", " ")
        for model in (Patient, Procedure, TreatedLevel):
            try:
                label = str(model._meta.get_field(name).verbose_name)
                break
            except FieldDoesNotExist:
                continue
        labels.append(label[:1].upper() + label[1:])
    return ", ".join(labels)
