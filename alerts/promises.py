"""What a patient is promised: when the team will respond to an URGENT or ROUTINE report and which
number to call in an emergency. Computed from the clinic's data (working days, hours, holidays, time
zone, emergency number) and the protocol's [responses] and [wording], never from fixed words such as
"today": outside working hours URGENT names the next opening, and ROUTINE names the last working day
of its promise, the same moment a review task opened now is due (`review_due_at`).
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import formats
from django.utils.html import format_html
from django.utils.safestring import SafeString

from patients.models import Clinic
from patients.services import WorkingTime

from .rules import Rules


@dataclass(frozen=True)
class Promises:
    emergency: str  # plain text, for e-mail
    emergency_html: SafeString  # the same with the number as a tap-to-call link
    emergency_number: str
    urgent: str
    routine: str
    worse: str
    routine_due_at: datetime


def review_due_at(clinic: Clinic, rules: Rules, *, now: datetime) -> datetime:
    """When a ROUTINE review opened at `now` is due: the clinic's closing time on the last working day
    of [responses] routine_working_days, in its time zone."""
    working = WorkingTime.of(clinic, around=now.date())
    return working.end_of_working_days(now, rules.responses["routine_working_days"])


def _day(moment: datetime) -> str:
    return formats.date_format(moment, "l j F")


def promises_for(clinic: Clinic, rules: Rules, *, now: datetime) -> Promises:
    """The patient's wording for a report (or a page) at `now`, at the clinic's local time."""
    wording = rules.wording
    working = WorkingTime.of(clinic, around=now.date())
    opening = working.local(working.next_opening(now))
    if opening == working.local(now):
        urgent = wording["urgent"]
    else:
        urgent = wording["urgent_later"].format(day=_day(opening), time=formats.time_format(opening, "H:i"))
    routine_due = working.end_of_working_days(now, rules.responses["routine_working_days"])
    number = clinic.emergency_number
    if number:
        emergency = wording["emergency"].format(number=number)
        before, after = wording["emergency"].split("{number}", 1)
        dial = number.replace(" ", "")
        emergency_html = format_html('{}<a class="call" href="tel:{}">{}</a>{}', before, dial, number, after)
    else:
        emergency = wording["emergency_no_number"]
        emergency_html = format_html("{}", emergency)
    return Promises(
        emergency=emergency,
        emergency_html=emergency_html,
        emergency_number=number,
        urgent=urgent,
        routine=wording["routine"].format(day=_day(working.local(routine_due))),
        worse=wording["worse"],
        routine_due_at=routine_due,
    )
