"""Where a checkpoint falls in time: the patient's local dates turned into UTC instants once, when
the row is planned, so that every sweep compares instants and daylight-saving changes are handled
here alone. Reads only; the rows themselves are written by `checkpoints.py`.
"""

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from .. import protocol as protocol_rules
from ..models import Clinic


@lru_cache(maxsize=65536)
def local_moment(day: date, at: time, zone: str) -> datetime:
    """The instant `day` at `at` in `zone`, in UTC. Daylight-saving changes are resolved here."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))


def reminder_time(clinic: Clinic, rules: protocol_rules.Protocol) -> time:
    """The local time of day the clinic's reminders go out: its own, else the protocol's."""
    return clinic.reminder_time or rules.reminder_time


def window_moments(start: date, target: date, end: date, *, zone: str, at: time) -> dict[str, Any]:
    """A checkpoint's window as dates and as instants: it opens at the first day's midnight, is due
    on the target day at the reminder time and closes at the midnight after its last day."""
    return {
        "window_start": start,
        "target_date": target,
        "window_end": end,
        "opens_at": local_moment(start, time(0), zone),
        "due_at": local_moment(target, at, zone),
        "closes_at": local_moment(end + timedelta(days=1), time(0), zone),
    }


def planned_values(
    procedure_id: int, item: protocol_rules.PlannedCheckpoint, *, zone: str, at: time, version: str
) -> dict[str, Any]:
    """The field values of a newly planned checkpoint (the rest take their defaults)."""
    moments = window_moments(item.earliest, item.target, item.latest, zone=zone, at=at)
    # Late from the start: no reminder for a window already closed; the worklist shows it for review.
    reminds = item.audience != "coordinator_task" and item.reminder_max > 0 and not item.late
    return {
        "procedure_id": procedure_id,
        "code": item.code,
        "sequence": item.sequence,
        "title": item.title,
        "audience": item.audience,
        "source": item.source,
        "protocol_version": version,
        "priority": item.priority,
        "calendar": item.calendar or item.audience == "clinician_visit",
        "reminder_every_days": item.reminder_every_days,
        "reminder_max": item.reminder_max,
        "next_reminder_at": moments["due_at"] if reminds else None,
        "needs_review": item.late,
        **moments,
    }
