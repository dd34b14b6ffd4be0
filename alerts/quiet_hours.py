"""When a message to a patient may go out: never in the clinic's quiet hours, in the patient's time
zone."""

from datetime import datetime, timedelta

from patients.models import Clinic
from patients.services import local_moment


def in_quiet_hours(clinic: Clinic, local: datetime) -> bool:
    return clinic.in_quiet_hours(local.time())


def after_quiet_hours(clinic: Clinic, local: datetime, zone: str) -> datetime:
    """The end of the quiet hours that `local` falls in (today's, or tomorrow's if they began tonight)."""
    day = local.date() if local.time() < clinic.quiet_hours_end else local.date() + timedelta(days=1)
    return local_moment(day, clinic.quiet_hours_end, zone)
