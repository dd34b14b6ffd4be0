"""Programme KPIs of one clinic for the procedures performed in a period.

Three fixed queries, whatever the number of rows: one aggregate over the period's procedures (the
Capture the Fracture clocks of E8, each read from the dated events that define it: DXA dates and
medication answers on completed checkpoints and in every version of the patient's record, never the
patient's current record, so a KPI met stays met when later data arrives), one over their
checkpoints whose window has closed, grouped by
code, and one over the alerts raised in the period, grouped by tier. Everything else is arithmetic
on those few numbers.

The FLS clocks are read from the clinic's protocol: its [[roles]] say which checkpoints are the DXA,
the medication and the 12-month review, and their `latest` the deadlines (the first two counted from
F, the last from the procedure), so the KPIs move with the protocol, not with this file.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.db.models import (
    Aggregate,
    Count,
    DateField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from patients.models import Checkpoint, CheckpointState, Clinic, HistoricalPatient, Procedure
from patients.protocol import get_protocol
from patients.services import local_moment

from .models import Alert, AlertEvent, Tier

ONE_DECIMAL = Decimal("0.1")


class Median(Aggregate):
    """PostgreSQL's exact median (`percentile_cont(0.5)`); works on intervals as well as numbers."""

    function = "percentile_cont"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False


def percent(numerator: int, denominator: int) -> Decimal | None:
    """Share in percent to one decimal (half up); None when nothing is counted yet."""
    if not denominator:
        return None
    return (Decimal(100 * numerator) / Decimal(denominator)).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Ratio:
    key: str
    label: str
    numerator: int
    denominator: int
    definition: str
    source: str
    group: str = ""
    in_progress: int | None = None

    @property
    def percent(self) -> Decimal | None:
        return percent(self.numerator, self.denominator)


@dataclass(frozen=True)
class AckTime:
    tier: str
    label: str
    raised: int
    acknowledged: int
    median: timedelta | None
    bar: Decimal  # the median as a share of the longest median on the page, 0–100

    @property
    def median_minutes(self) -> Decimal | None:
        if self.median is None:
            return None
        return (Decimal(self.median.total_seconds()) / 60).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Deadlines:
    """The checkpoints and days of the E8 clocks, from the protocol."""

    dxa_from_fracture: int
    medication_from_fracture: int
    year_review_from_procedure: int
    year_review_target: int
    recent_dxa_days: int
    dxa_code: str
    medication_code: str
    year_review_code: str


@dataclass(frozen=True)
class KpiReport:
    clinic: Clinic
    start: date
    end: date
    today: date
    procedures: int
    fracture_date_assumed: int
    deadlines: Deadlines
    fls: list[Ratio]
    dxa_by_recent_scan: int
    medication_reason_not_started: Ratio
    window_overall: Ratio
    window_by_code: list[Ratio]
    ack_times: list[AckTime]
    ack_definition: str
    escalations: list[Ratio]


def default_period(today: date) -> tuple[date, date]:
    """The last 12 months up to `today`, both ends included."""
    try:
        start = today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        start = today.replace(year=today.year - 1, day=28)
    return start + timedelta(days=1), today


def clinic_today(clinic: Clinic, now: datetime) -> date:
    return now.astimezone(ZoneInfo(clinic.time_zone)).date()


def deadlines_for(clinic: Clinic) -> Deadlines:
    rules = get_protocol(clinic.protocol_version)
    dxa, medication, year_review = (rules.checkpoint_for_role(role) for role in ("dxa", "medication", "year_review"))
    return Deadlines(
        dxa_from_fracture=rules.checkpoint(dxa).latest,
        medication_from_fracture=rules.checkpoint(medication).latest,
        year_review_from_procedure=rules.checkpoint(year_review).latest,
        year_review_target=rules.checkpoint(year_review).target,
        recent_dxa_days=rules.recent_dxa_days,
        dxa_code=dxa,
        medication_code=medication,
        year_review_code=year_review,
    )


def compute(*, clinic: Clinic, start: date, end: date, now: datetime | None = None) -> KpiReport:
    """The KPIs of `clinic` for procedures performed from `start` to `end` (both included)."""
    now = now or timezone.now()
    today = clinic_today(clinic, now)
    deadlines = deadlines_for(clinic)
    procedures = Procedure.objects.filter(patient__clinic=clinic, performed_on__range=(start, end))
    counts = _fls_counts(procedures, today=today, deadlines=deadlines)
    windows = _window_rows(clinic, start, end, now)
    tiers = _alert_rows(clinic, start, end)
    return KpiReport(
        clinic=clinic,
        start=start,
        end=end,
        today=today,
        procedures=counts["procedures"],
        fracture_date_assumed=counts["assumed"],
        deadlines=deadlines,
        fls=_fls_ratios(counts, deadlines),
        dxa_by_recent_scan=counts["dxa_recent"],
        medication_reason_not_started=_medication_reason_ratio(counts, deadlines),
        window_overall=_window_ratio("", windows),
        window_by_code=[_window_ratio(row["code"], [row]) for row in windows],
        ack_times=_ack_times(tiers),
        ack_definition=(
            "Median of (acknowledged at − first seen at) over the alerts raised in the period (first seen between "
            "the period's first and last day, clinic time) and acknowledged; alerts never acknowledged are counted "
            "as raised but not in the median. Tier is the alert's current tier."
        ),
        escalations=_escalation_ratios(tiers),
    )


def _medication_reason_ratio(counts: dict, deadlines: Deadlines) -> Ratio:
    return Ratio(
        key="medication_reason_not_started",
        label="Documented reason medication not started",
        numerator=counts["med_reason"],
        denominator=counts["med_due"],
        in_progress=counts["procedures"] - counts["med_due"],
        definition=(
            f"{deadlines.medication_code} completed with medication not started and the documented reason, among "
            f"procedures whose F+{deadlines.medication_from_fracture} days has passed. Not counted as met."
        ),
        source="E8",
    )


def _escalation_ratios(tiers: dict) -> list[Ratio]:
    return [
        Ratio(
            key="escalated",
            label=f"{label} alerts escalated",
            group=tier,
            numerator=tiers[tier]["escalated"],
            denominator=tiers[tier]["raised"],
            definition=(
                "Alerts raised in the period that escalated at least once (an “escalated” event: a step past "
                "the first notification) / alerts raised in the period."
            ),
            source="[DESIGN]",
        )
        for tier, label in Tier.choices
    ]


# --- Queries ------------------------------------------------------------------------------------


def _days_after(expression, days: int) -> ExpressionWrapper:
    # PostgreSQL: date + integer is a date, so comparisons stay on calendar days.
    return ExpressionWrapper(expression + Value(days), output_field=DateField())


def _completed(code: str, *conditions: Q, **lookups) -> Exists:
    return Exists(
        Checkpoint.objects.filter(
            *conditions, procedure=OuterRef("pk"), code=code, state=CheckpointState.COMPLETED, **lookups
        )
    )


def _dxa_dated(low: str, high: str) -> tuple[Exists, Exists]:
    """A DXA dated from `low` to `high` (the procedure's annotated dates) in any dated event of the
    patient: a completed checkpoint's result (CP-06, CP-13) or any version of the patient's record
    (registration, import, admin, API, FHIR). Every DXA stays on record, so a repeat scan adds an
    event and never removes the one that met the target."""
    dated = {"dxa_date__gte": OuterRef(low), "dxa_date__lte": OuterRef(high)}
    result = Checkpoint.objects.filter(procedure__patient=OuterRef("patient_id"), state=CheckpointState.COMPLETED)
    record = HistoricalPatient.objects.filter(id=OuterRef("patient_id"))
    return Exists(result.filter(**dated)), Exists(record.filter(**dated))


def _medication_started_by(deadline: str) -> tuple[Exists, Exists]:
    """Medication started on or before `deadline`, by any dated event: a completed checkpoint's answer
    (CP-07, CP-09, CP-12) or any version of the patient's record."""
    result = Checkpoint.objects.filter(
        procedure__patient=OuterRef("patient_id"),
        state=CheckpointState.COMPLETED,
        medication_started=True,
        medication_started_on__lte=OuterRef(deadline),
    )
    record = HistoricalPatient.objects.filter(
        id=OuterRef("patient_id"), on_osteoporosis_med=True, osteoporosis_med_started_on__lte=OuterRef(deadline)
    )
    return Exists(result), Exists(record)


def _on_medication_at_review(code: str) -> Exists:
    """The 12-month review completed and, at it, on medication: its own answer when it has one (a
    "no" — stopped — is not on medication, whatever is recorded later), else the patient's record as
    it stood when the review was completed."""
    record_then = HistoricalPatient.objects.filter(
        id=OuterRef("procedure__patient_id"), history_date__lte=OuterRef("completed_at")
    ).order_by("-history_date", "-history_id")
    review = Checkpoint.objects.filter(procedure=OuterRef("pk"), code=code, state=CheckpointState.COMPLETED)
    review = review.annotate(on_med_then=Subquery(record_then.values("on_osteoporosis_med")[:1]))
    return Exists(review.filter(Q(medication_started=True) | Q(medication_started__isnull=True, on_med_then=True)))


def _fls_counts(procedures, *, today: date, deadlines: Deadlines) -> dict[str, int]:
    """One aggregate query: each clock's due count and met count, each from its dated events."""
    fracture_on = Coalesce("fracture_diagnosed_on", "performed_on")
    events = {
        "dxa": _dxa_dated("recent_dxa_from", "dxa_deadline"),
        "dxa_before": _dxa_dated("recent_dxa_from", "performed_on"),
        "dxa_after": _dxa_dated("performed_on", "dxa_deadline"),
        "med": _medication_started_by("med_deadline"),
    }
    annotated = procedures.annotate(
        fracture_on=fracture_on,
        dxa_deadline=_days_after(fracture_on, deadlines.dxa_from_fracture),
        med_deadline=_days_after(fracture_on, deadlines.medication_from_fracture),
        recent_dxa_from=_days_after(F("performed_on"), -deadlines.recent_dxa_days),
        med_reason_given=_completed(deadlines.medication_code, medication_started=False),
        year_done=_on_medication_at_review(deadlines.year_review_code),
        **{
            f"{name}_{kind}": found
            for name, pair in events.items()
            for kind, found in zip(("result", "record"), pair, strict=True)
        },
    )
    met = {name: Q(**{f"{name}_result": True}) | Q(**{f"{name}_record": True}) for name in events}
    met_dxa, recent = met["dxa"], met["dxa_before"] & ~met["dxa_after"]
    # "F + n days has passed": F + n < today, i.e. F < today − n.
    dxa_due = Q(fracture_on__lt=today - timedelta(days=deadlines.dxa_from_fracture))
    med_due = Q(fracture_on__lt=today - timedelta(days=deadlines.medication_from_fracture))
    year_due = Q(performed_on__lt=today - timedelta(days=deadlines.year_review_from_procedure))
    return annotated.aggregate(
        procedures=Count("pk"),
        assumed=Count("pk", filter=Q(fracture_diagnosed_on__isnull=True)),
        dxa_due=Count("pk", filter=dxa_due),
        dxa_met=Count("pk", filter=dxa_due & met_dxa),
        dxa_recent=Count("pk", filter=dxa_due & recent),
        med_due=Count("pk", filter=med_due),
        med_met=Count("pk", filter=med_due & met["med"]),
        med_reason=Count("pk", filter=med_due & Q(med_reason_given=True)),
        year_due=Count("pk", filter=year_due),
        year_met=Count("pk", filter=year_due & Q(year_done=True)),
    )


def _window_rows(clinic: Clinic, start: date, end: date, now: datetime) -> list[dict]:
    """One grouped query: closed checkpoints and those completed inside their window, per code.

    `opens_at` and `closes_at` are the first and last local day of the window as instants in the
    patient's time zone, so `opens_at <= completed_at < closes_at` is "completed on a local date
    inside [window_start, window_end]"."""
    within = Q(state=CheckpointState.COMPLETED, completed_at__gte=F("opens_at"), completed_at__lt=F("closes_at"))
    return list(
        Checkpoint.objects.filter(
            procedure__patient__clinic=clinic,
            procedure__performed_on__range=(start, end),
            state__in=[CheckpointState.COMPLETED, CheckpointState.MISSED],
            closes_at__lte=now,
        )
        .values("code")
        .annotate(closed=Count("pk"), within=Count("pk", filter=within))
        .order_by("code")
    )


def _alert_rows(clinic: Clinic, start: date, end: date) -> dict[str, dict]:
    """One grouped query over the alerts first seen in the period: counts, median and escalations."""
    acknowledged = Q(acknowledged_at__isnull=False)
    escalated = Exists(AlertEvent.objects.filter(alert=OuterRef("pk"), kind=AlertEvent.Kind.ESCALATED))
    rows = (
        Alert.objects.filter(
            clinic=clinic,
            first_seen_at__gte=local_moment(start, time(0), clinic.time_zone),
            first_seen_at__lt=local_moment(end + timedelta(days=1), time(0), clinic.time_zone),
        )
        .values("tier")
        .annotate(
            raised=Count("pk"),
            acknowledged=Count("pk", filter=acknowledged),
            median=Median(F("acknowledged_at") - F("first_seen_at"), filter=acknowledged, output_field=DurationField()),
            escalated=Count("pk", filter=escalated),
        )
        .order_by("tier")
    )
    empty = {"raised": 0, "acknowledged": 0, "median": None, "escalated": 0}
    by_tier = {tier: dict(empty) for tier in Tier.values}
    for row in rows:
        by_tier[row["tier"]] = row
    return by_tier


# --- Ratios -------------------------------------------------------------------------------------


def _fls_ratios(counts: dict[str, int], deadlines: Deadlines) -> list[Ratio]:
    total, d = counts["procedures"], deadlines
    dxa, med, year = d.dxa_from_fracture, d.medication_from_fracture, d.year_review_from_procedure
    return [
        Ratio(
            key="dxa_by_week_12",
            label="DXA by week 12",
            numerator=counts["dxa_met"],
            denominator=counts["dxa_due"],
            in_progress=total - counts["dxa_due"],
            definition=(
                f"A DXA dated from {deadlines.recent_dxa_days} days before the procedure to F+{dxa} days, in any "
                f"of the patient's dated DXA events (a completed {deadlines.dxa_code} or repeat-DXA result, or any "
                "version of the patient's record); a DXA before the procedure stands in for "
                f"{deadlines.dxa_code} ([DESIGN]). Every DXA is kept: a later scan never un-meets a met target / "
                f"procedures whose F+{dxa} days has passed. F is the fracture diagnosis date, or the procedure "
                "date when unknown."
            ),
            source="E8",
        ),
        Ratio(
            key="medication_by_week_16",
            label="Osteoporosis medication started by week 16",
            numerator=counts["med_met"],
            denominator=counts["med_due"],
            in_progress=total - counts["med_due"],
            definition=(
                f"A medication start dated on or before F+{med} days, in any dated medication event (a completed "
                f"{deadlines.medication_code} or later checkpoint answering started, with its start date, or any "
                f"version of the patient's record) / procedures whose F+{med} days has passed."
            ),
            source="E8",
        ),
        Ratio(
            key="on_medication_at_week_52",
            label="On medication at week 52",
            numerator=counts["year_met"],
            denominator=counts["year_due"],
            in_progress=total - counts["year_due"],
            definition=(
                f'{deadlines.year_review_code} completed with its answer: on medication. A "not on medication" '
                f"(stopped) answer is not counted, whatever is recorded later; with no answer, the patient's record "
                f"as it stood when {deadlines.year_review_code} was completed / procedures whose day {year} "
                f"(day {deadlines.year_review_target} and its window) has passed."
            ),
            source="E8",
        ),
    ]


def _window_ratio(code: str, rows: list[dict]) -> Ratio:
    return Ratio(
        key="checkpoints_within_window",
        label=code or "All checkpoints",
        group=code,
        numerator=sum(row["within"] for row in rows),
        denominator=sum(row["closed"] for row in rows),
        definition=(
            "Checkpoints completed on a local date (patient's time zone) inside [window start, window end] / "
            "checkpoints whose window has closed, completed or missed. Cancelled ones are not counted."
        ),
        source="[DESIGN]",
    )


def _ack_times(tiers: dict[str, dict]) -> list[AckTime]:
    longest = max((row["median"] for row in tiers.values() if row["median"]), default=None)
    items = []
    for tier, label in Tier.choices:
        row = tiers[tier]
        bar = Decimal(0)
        if row["median"] and longest:
            bar = (Decimal(row["median"] / longest) * 100).quantize(ONE_DECIMAL)
        items.append(
            AckTime(
                tier=tier,
                label=str(label),
                raised=row["raised"],
                acknowledged=row["acknowledged"],
                median=row["median"],
                bar=bar,
            )
        )
    return items
