"""The clinic's working time: its working days, hours and holidays, in its own time zone. Every
promise to a patient about when the team responds (URGENT "today", ROUTINE "within 2 working days",
the due moment of a review task) is computed here, from the clinic's data. Reads only.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..models import Clinic, ClinicHoliday
from .moments import local_moment

# Far enough to pass any run of holidays a clinic could enter; a clinic with no working day at all is
# refused by `Clinic.clean`, so the search ends well before this.
SEARCH_DAYS = 366


@dataclass(frozen=True)
class WorkingTime:
    """One clinic's working calendar, loaded once (one query for its holidays)."""

    zone: str
    working_days: frozenset[int]
    opens_at: time
    closes_at: time
    holidays: frozenset[date]

    @classmethod
    def of(cls, clinic: Clinic, *, around: date | None = None) -> "WorkingTime":
        days = ClinicHoliday.objects.filter(clinic=clinic)
        if around is not None:
            days = days.filter(day__gte=around - timedelta(days=1), day__lte=around + timedelta(days=SEARCH_DAYS))
        return cls(
            zone=clinic.time_zone,
            working_days=frozenset(clinic.working_days or ()),
            opens_at=clinic.opens_at,
            closes_at=clinic.closes_at,
            holidays=frozenset(days.values_list("day", flat=True)),
        )

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(ZoneInfo(self.zone))

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.working_days and day not in self.holidays

    def is_open(self, moment: datetime) -> bool:
        """Whether the team is at work at `moment` (a working day, between opening and closing)."""
        local = self.local(moment)
        return self.is_working_day(local.date()) and self.opens_at <= local.time() < self.closes_at

    def working_days_after(self, day: date, count: int) -> date:
        """The `count`-th working day after `day` (`day` itself never counts): Friday + 2 is Tuesday,
        or Wednesday when that Monday is a holiday."""
        current, found = day, 0
        for _ in range(SEARCH_DAYS):
            current += timedelta(days=1)
            if self.is_working_day(current):
                found += 1
                if found == count:
                    return current
        raise ValueError("The clinic has no working day within a year.")

    def next_opening(self, moment: datetime) -> datetime:
        """`moment` itself when the team is at work then, else the next opening (an aware instant)."""
        if self.is_open(moment):
            return moment
        local = self.local(moment)
        today = local.date()
        if self.is_working_day(today) and local.time() < self.opens_at:
            return local_moment(today, self.opens_at, self.zone)
        return local_moment(self.working_days_after(today, 1), self.opens_at, self.zone)

    def end_of_working_days(self, moment: datetime, count: int) -> datetime:
        """The closing time of the `count`-th working day after `moment`'s local date: the due
        moment of "within `count` working days"."""
        day = self.working_days_after(self.local(moment).date(), count)
        return local_moment(day, self.closes_at, self.zone)
