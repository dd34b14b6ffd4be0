"""Filters of the patient pages."""

import re

from django import template

register = template.Library()


@register.filter
def tel(number: str) -> str:
    """A phone number as a tap-to-call link target: digits and a leading +, nothing else."""
    return "tel:" + re.sub(r"(?!^\+)[^\d]", "", (number or "").strip())
