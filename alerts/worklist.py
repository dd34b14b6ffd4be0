"""The worklist's sections as queries: filters, search by name or MRN, sorting and pages, for a clinic of
thousands of patients. Each section runs a fixed number of queries whatever its size (a COUNT, one page,
and for the sections grouped per patient one query for that page's items), and every row knows once
whether the user may act on it (`can_act`, from `patients.access` for the row's clinic).

Checkpoints and phone calls are grouped: one row per patient, listing that patient's items.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.core.paginator import Paginator
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, Subquery, Value, When

from patients import access
from patients.models import (
    Audience,
    Checkpoint,
    CheckpointState,
    ClinicMembership,
    Patient,
    RiskAssessment,
    TierDropReview,
    WorkItem,
    WorkKind,
)
from patients.services import WORK_ACTION

from .models import Alert, AlertState, CheckIn, CheckInState, Delivery, DeliveryState, ReviewTask, Tier

PAGE_SIZE = 25
TIER_RANK = Case(
    When(tier="emergency", then=Value(3)),
    When(tier="urgent", then=Value(2)),
    default=Value(1),
    output_field=IntegerField(),
)
DUE_CHOICES = [("due", "Due"), ("missed", "Missed"), ("review", "Imported, to review")]
IDENTITY_SORTS = {
    "name": ("{p}family_name", "{p}given_name"),
    "mrn": ("{p}mrn",),
    "born": ("{p}birth_date",),
    "clinic": ("{p}clinic__name",),
}


@dataclass(frozen=True)
class Filters:
    """What the user narrowed the worklist to. All but the search are in the query string; the search
    (a name or an MRN) is kept in the session so that no identifier is ever in a URL."""

    q: str = ""
    tier: str = ""
    state: str = ""
    kind: str = ""
    due: str = ""
    clinic: int | None = None
    mine: bool = False
    waiting: bool = False

    @classmethod
    def read(cls, params, *, q: str, visible) -> "Filters":
        clinic = params.get("clinic", "")
        return cls(
            q=q.strip()[:100],
            tier=params.get("tier", "") if params.get("tier") in Tier.values else "",
            state=params.get("state", "") if params.get("state") in (AlertState.OPEN, AlertState.ACKNOWLEDGED) else "",
            kind=params.get("kind", "") if params.get("kind") in Audience.values else "",
            due=params.get("due", "") if params.get("due") in dict(DUE_CHOICES) else "",
            clinic=int(clinic) if clinic.isdigit() and int(clinic) in visible else None,
            mine=params.get("mine") == "1",
            waiting=params.get("waiting") == "1",
        )


@dataclass
class Section:
    name: str
    page: object
    sort: str
    sorts: tuple[str, ...]
    rows: list = field(default_factory=list)


def search_patients(q: str, prefix: str) -> Q:
    """Every word of `q` is the MRN (exactly, any case) or part of the given or family name."""
    found = Q()
    for word in q.replace(",", " ").split():
        found &= (
            Q(**{f"{prefix}mrn__iexact": word})
            | Q(**{f"{prefix}family_name__icontains": word})
            | Q(**{f"{prefix}given_name__icontains": word})
        )
    return found


class Worklist:
    """The sections of one user's worklist; `build(name)` returns one section's current page."""

    def __init__(self, user, filters: Filters, params, *, now: datetime):
        self.user, self.filters, self.params, self.now = user, filters, params, now
        visible = access.clinics_for(user, access.Action.VIEW)
        self.clinics = sorted({filters.clinic} if filters.clinic else visible)
        # Computed once: the clinics where each kind of work may be acted on (an auditor's clinic: none).
        self.acting = {kind: access.clinics_for(user, action) for kind, action in WORK_ACTION.items()}
        self.outbox = access.clinics_for(user, access.Action.OUTBOX)

    def _patients(self, prefix: str) -> Q:
        """The clinic, search and assigned-to-me filters for rows reaching their patient by `prefix`."""
        narrowed = Q(**{f"{prefix}clinic_id__in": self.clinics})
        if self.filters.q:
            narrowed &= search_patients(self.filters.q, prefix)
        return narrowed

    def _mine(self, kind: str, patient_ref: str) -> Exists:
        return Exists(WorkItem.objects.filter(patient=OuterRef(patient_ref), kind=kind, assigned_to=self.user))

    def _assignee(self, kind: str, patient_ref: str) -> Subquery:
        return Subquery(WorkItem.objects.filter(patient=OuterRef(patient_ref), kind=kind).values("assigned_to")[:1])

    def _section(self, name: str, queryset, sorts: dict, default: str, prefix: str) -> Section:
        sort = self.params.get(f"{name}_sort", default)
        if sort.lstrip("-") not in {**sorts, **IDENTITY_SORTS}:
            sort = default
        key = sort.lstrip("-")
        columns = sorts.get(key) or tuple(c.format(p=prefix) for c in IDENTITY_SORTS[key])
        if sort.startswith("-"):
            columns = tuple(c[1:] if c.startswith("-") else f"-{c}" for c in columns)
        queryset = queryset.order_by(*columns, "pk")
        page = Paginator(queryset, PAGE_SIZE).get_page(self.params.get(f"{name}_page"))
        return Section(name, page, sort, tuple([*sorts, *IDENTITY_SORTS]), list(page.object_list))

    def alerts(self, state: str) -> Section:
        name = "alerts" if state == AlertState.OPEN else "acknowledged"
        rows = Alert.objects.filter(self._patients("patient__"), state=state)
        if self.filters.state and self.filters.state != state:
            rows = rows.none()
        if self.filters.tier:
            rows = rows.filter(tier=self.filters.tier)
        if self.filters.mine:
            rows = rows.filter(self._mine(WorkKind.ALERT, "patient_id"))
        rows = rows.select_related("patient__clinic", "acknowledged_by").annotate(
            rank=TIER_RANK, assignee=self._assignee(WorkKind.ALERT, "patient_id")
        )
        if state == AlertState.OPEN:
            sorts = {"tier": ("-rank", "first_seen_at"), "raised": ("first_seen_at",)}
            section = self._section(name, rows, sorts, "tier", "patient__")
        else:
            sorts = {"acknowledged": ("acknowledged_at", "first_seen_at"), "tier": ("-rank", "acknowledged_at")}
            section = self._section(name, rows, sorts, "acknowledged", "patient__")
        self._mark(section.rows, WorkKind.ALERT, lambda alert: alert.patient)
        return section

    def checkpoints(self) -> Section:
        actionable = Q(state__in=[CheckpointState.DUE, CheckpointState.MISSED]) | Q(
            needs_review=True, state=CheckpointState.SCHEDULED
        )
        wanted = {
            "due": Q(state=CheckpointState.DUE),
            "missed": Q(state=CheckpointState.MISSED),
            "review": Q(needs_review=True, state=CheckpointState.SCHEDULED),
        }.get(self.filters.due, actionable)
        items = Checkpoint.objects.filter(actionable & wanted)
        if self.filters.kind:
            items = items.filter(audience=self.filters.kind)
        of_patient = items.filter(procedure__patient=OuterRef("pk"))
        patients = Patient.objects.filter(self._patients(""), Exists(of_patient)).annotate(
            priority=Exists(of_patient.filter(priority=True)),
            earliest=Subquery(of_patient.order_by("closes_at").values("closes_at")[:1]),
        )
        sorts = {"urgent": ("-priority", "earliest"), "closes": ("earliest",)}
        section = self._grouped("checkpoints", patients, WorkKind.CHECKPOINT, sorts, "urgent")
        found = items.filter(procedure__patient_id__in=[p.pk for p in section.rows]).select_related("procedure")
        self._attach(section.rows, found.order_by("-priority", "closes_at"), lambda cp: cp.procedure.patient_id)
        return section

    def calls(self) -> Section:
        items = CheckIn.objects.filter(state=CheckInState.CALL_NEEDED)
        of_patient = items.filter(patient=OuterRef("pk"))
        later = WorkItem.objects.filter(patient=OuterRef("pk"), kind=WorkKind.CALL, retry_at__gt=self.now)
        patients = Patient.objects.filter(self._patients(""), Exists(of_patient))
        # A call that did not reach the patient waits for its time to try again (the "waiting" filter shows those).
        patients = patients.filter(Exists(later)) if self.filters.waiting else patients.exclude(Exists(later))
        call = WorkItem.objects.filter(patient=OuterRef("pk"), kind=WorkKind.CALL)
        patients = patients.annotate(
            oldest=Subquery(of_patient.order_by("updated_at").values("updated_at")[:1]),
            retry_at=Subquery(call.values("retry_at")[:1]),
            last_outcome=Subquery(call.values("last_outcome")[:1]),
            attempts=Subquery(call.values("attempts")[:1]),
        )
        section = self._grouped("calls", patients, WorkKind.CALL, {"waiting": ("oldest",)}, "waiting")
        found = items.filter(patient_id__in=[p.pk for p in section.rows]).select_related("procedure")
        self._attach(section.rows, found.order_by("updated_at"), lambda checkin: checkin.patient_id)
        return section

    def _grouped(self, name: str, patients, kind: str, sorts: dict, default: str) -> Section:
        if self.filters.mine:
            patients = patients.filter(self._mine(kind, "pk"))
        patients = patients.select_related("clinic").annotate(assignee=self._assignee(kind, "pk"))
        section = self._section(name, patients, sorts, default, "")
        self._mark(section.rows, kind, lambda patient: patient)
        return section

    def reviews(self) -> Section:
        rows = ReviewTask.objects.filter(self._patients("patient__"), state=ReviewTask.State.OPEN)
        if self.filters.tier:
            rows = rows.filter(tier=self.filters.tier)
        if self.filters.mine:
            rows = rows.filter(self._mine(WorkKind.REVIEW, "patient_id"))
        rows = rows.select_related("patient__clinic").annotate(assignee=self._assignee(WorkKind.REVIEW, "patient_id"))
        section = self._section("reviews", rows, {"due": ("due_at",)}, "due", "patient__")
        self._mark(section.rows, WorkKind.REVIEW, lambda task: task.patient)
        return section

    def incomplete(self) -> Section:
        rows = RiskAssessment.objects.filter(self._patients("procedure__patient__"), is_current=True).exclude(
            missing=[]
        )
        rows = rows.select_related("procedure__patient__clinic")
        section = self._section("incomplete", rows, {"oldest": ("created_at",)}, "oldest", "procedure__patient__")
        acting = self.acting[WorkKind.CHECKPOINT]
        for row in section.rows:
            row.can_act = row.procedure.patient.clinic_id in acting
        return section

    def tier_drops(self) -> Section:
        """A re-assessment that would lower a tier waits here for a clinician (spec v0.2 §2), oldest first."""
        rows = TierDropReview.objects.filter(
            self._patients("procedure__patient__"), state=TierDropReview.State.OPEN
        ).select_related("procedure__patient__clinic")
        section = self._section("tier_drops", rows, {"oldest": ("created_at",)}, "oldest", "procedure__patient__")
        confirming = access.clinics_for(self.user, access.Action.CONFIRM_TIER)
        for row in section.rows:
            row.can_act = row.procedure.patient.clinic_id in confirming
        return section

    def failures(self) -> Section:
        rows = Delivery.objects.filter(clinic_id__in=self.clinics, state=DeliveryState.FAILED)
        if self.filters.q or self.filters.mine:
            rows = rows.none()  # deliveries are not a patient's work: a search or "mine" leaves them out
        section = self._section("failures", rows.select_related("clinic"), {"latest": ("-updated_at",)}, "latest", "")
        for row in section.rows:
            row.can_act = row.clinic_id in self.outbox
        return section

    def _mark(self, rows: list, kind: str, patient_of) -> None:
        """`can_act` and the people the row may be given to, from the grants computed once."""
        acting = self.acting[kind]
        for row in rows:
            clinic_id = patient_of(row).clinic_id
            row.can_act = clinic_id in acting
            row.assignees = self.staff.get((kind, clinic_id), []) if row.can_act else []
            row.assignee_name = next(
                (u.get_full_name() or u.username for u in row.assignees if u.pk == row.assignee), ""
            )

    @staticmethod
    def _attach(rows: list, items, patient_id_of) -> None:
        by_patient = {row.pk: row for row in rows}
        for row in rows:
            row.items = []
        for item in items:
            by_patient[patient_id_of(item)].items.append(item)

    @property
    def staff(self) -> dict:
        """(kind, clinic id) → the active staff who may take that work there, read once."""
        if not hasattr(self, "_staff"):
            self._staff = {}
            acting = set().union(*self.acting.values())
            memberships = ClinicMembership.objects.filter(clinic_id__in=acting, user__is_active=True)
            for membership in memberships.select_related("user").order_by("user__username"):
                for kind, action in WORK_ACTION.items():
                    if action in access.ROLE_ACTIONS.get(membership.role, ()):
                        self._staff.setdefault((kind, membership.clinic_id), []).append(membership.user)
        return self._staff

    def sections(self) -> dict[str, Section]:
        return {
            "alerts": self.alerts(AlertState.OPEN),
            "acknowledged": self.alerts(AlertState.ACKNOWLEDGED),
            "checkpoints": self.checkpoints(),
            "calls": self.calls(),
            "reviews": self.reviews(),
            "tier_drops": self.tier_drops(),
            "incomplete": self.incomplete(),
            "failures": self.failures(),
        }
