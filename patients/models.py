"""The registry: clinics, their staff, patients, procedures and treated levels.

Risk-factor fields are named after `shared/clinical/spec.md` §2 and validated to its ranges.
"""

from datetime import date, time
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from kyphofollow.audit import SOURCES, current_client_id, current_source

TIME_ZONE_CHOICES = sorted((name, name) for name in available_timezones())
VERTEBRAE = [f"T{n}" for n in range(1, 13)] + [f"L{n}" for n in range(1, 6)]


class AuditStamp(models.Model):
    """Added to every audit record: through what the change came, and which API client made it
    (`history_user` / `by` name the staff user)."""

    source = models.CharField(max_length=12, choices=SOURCES, default=current_source, editable=False)
    api_client_id_stamp = models.BigIntegerField(
        "API client", null=True, blank=True, default=current_client_id, editable=False
    )

    class Meta:
        abstract = True


def _history_user(instance=None, request=None, **kwargs):
    """The staff user behind a change; an API client is recorded in `api_client_id_stamp` instead."""
    from django.contrib.auth.models import AbstractBaseUser

    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def audit_trail(**options) -> HistoricalRecords:
    return HistoricalRecords(bases=[AuditStamp], get_user=_history_user, **options)


def validate_not_in_future(value: date) -> None:
    if value > timezone.localdate():
        raise ValidationError(_("This date is in the future."), code="future_date")


def default_protocol_version() -> str:
    from .protocol import latest_version

    return latest_version()


def protocol_version_choices() -> list[tuple[str, str]]:
    from .protocol import available_versions

    return [(version, version) for version in available_versions()]


class Clinic(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = models.CharField(max_length=64, choices=TIME_ZONE_CHOICES, help_text=_("IANA time zone."))
    phone = models.CharField(max_length=40, help_text=_("Shown to patients in every message."))
    email = models.EmailField()
    protocol_version = models.CharField(
        max_length=20,
        default=default_protocol_version,
        choices=protocol_version_choices,
        help_text=_("Protocol for new schedules. Existing schedules keep the version they were built from."),
    )
    reminder_time = models.TimeField(
        null=True, blank=True, help_text=_("Local time reminders go out; empty uses the protocol's default.")
    )
    quiet_hours_start = models.TimeField(
        default=time(20, 0), help_text=_("No patient e-mail from this local time… [DESIGN]")
    )
    quiet_hours_end = models.TimeField(
        default=time(8, 0), help_text=_("…until this local time. Equal start and end: no quiet hours. [DESIGN]")
    )
    digest_time = models.TimeField(
        default=time(7, 30), help_text=_("Local time of the daily overdue digest to coordinators. [DESIGN]")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_trail()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.reminder_time and self.in_quiet_hours(self.reminder_time):
            raise ValidationError({"reminder_time": _("The reminder time falls inside the clinic's quiet hours.")})

    def in_quiet_hours(self, moment: time) -> bool:
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if start <= end:
            return start <= moment < end
        return moment >= start or moment < end


class StaffRole(models.TextChoices):
    COORDINATOR = "coordinator", _("Coordinator")
    CLINICIAN = "clinician", _("Clinician")
    CLINIC_ADMIN = "clinic_admin", _("Clinic admin")
    AUDITOR = "auditor", _("Auditor")


class ClinicMembership(models.Model):
    """A staff user's role in one clinic; a user may belong to several clinics."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clinic_memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=StaffRole.choices)
    on_call = models.BooleanField(default=False, help_text=_("Last step of the alert escalation chain."))

    history = audit_trail()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_role_per_user_and_clinic")]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_role_display()} at {self.clinic}"


class Sex(models.TextChoices):
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")
    OTHER = "other", _("Other")
    UNKNOWN = "unknown", _("Unknown")


class PatientStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    DECEASED = "deceased", _("Deceased")


class PatientQuerySet(models.QuerySet):
    def for_user(self, user) -> "PatientQuerySet":
        if user.is_superuser:
            return self
        return self.filter(clinic__memberships__user=user)

    def active(self) -> "PatientQuerySet":
        return self.filter(status=PatientStatus.ACTIVE)


class Patient(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField(_("MRN"), max_length=40, help_text=_("Medical record number, unique within the clinic."))
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField(validators=[validate_not_in_future])
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    language = models.CharField(max_length=10, choices=settings.LANGUAGES, default="en")
    time_zone = models.CharField(max_length=64, choices=TIME_ZONE_CHOICES, help_text=_("IANA time zone."))
    email_consent = models.BooleanField(default=False, help_text=_("The patient agreed to receive e-mail."))
    status = models.CharField(max_length=10, choices=PatientStatus.choices, default=PatientStatus.ACTIVE)
    responsible_clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Patient-level risk factors (spec §2). Empty means "not recorded", never "no".
    bmd_lowest_t_score = models.DecimalField(
        "BMD lowest T-score",
        max_digits=3,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(-6), MaxValueValidator(3)],
        help_text=_("Lowest DXA T-score, −6.0 to +3.0 (spec §2)."),
    )
    dxa_date = models.DateField("DXA date", null=True, blank=True, validators=[validate_not_in_future])
    regular_outdoor_activity = models.BooleanField(null=True, blank=True)
    on_osteoporosis_med = models.BooleanField(null=True, blank=True, help_text=_("On osteoporosis medication."))
    osteoporosis_drug = models.CharField(max_length=100, blank=True)
    osteoporosis_med_started_on = models.DateField(null=True, blank=True, validators=[validate_not_in_future])
    bmi = models.DecimalField(
        "BMI",
        max_digits=3,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(12), MaxValueValidator(50)],
        help_text=_("Body-mass index in kg/m², 12 to 50 (spec §2)."),
    )
    prior_vertebral_fractures = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(15)], help_text=_("Count, 0 to 15 (spec §2).")
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_trail()

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["family_name", "given_name", "id"]
        constraints = [models.UniqueConstraint(fields=["clinic", "mrn"], name="unique_mrn_per_clinic")]
        indexes = [
            # Incremental sync: `GET /api/v1/patients/?updated_since=…`.
            models.Index(fields=["updated_at"], name="patient_updated_at"),
        ]

    def __str__(self) -> str:
        # Deliberately no name or MRN: this string ends up in logs and admin messages.
        return f"Patient #{self.pk}"

    def age_on(self, day: date) -> int:
        born = self.birth_date
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    def clean(self) -> None:
        errors = {}
        if self.birth_date and self.birth_date <= timezone.localdate():
            age = self.age_on(timezone.localdate())
            if not 40 <= age <= 110:
                errors["birth_date"] = _("Age must be between 40 and 110 years (spec §2); this date gives %(age)s.") % {
                    "age": age
                }
        if self.osteoporosis_med_started_on and self.on_osteoporosis_med is False:
            errors["osteoporosis_med_started_on"] = _("A start date was given but the patient is not on medication.")
        if self.osteoporosis_drug and self.on_osteoporosis_med is False:
            errors["osteoporosis_drug"] = _("A drug was given but the patient is not on medication.")
        if errors:
            raise ValidationError(errors)


class ProcedureKind(models.TextChoices):
    KYPHOPLASTY = "kyphoplasty", _("Kyphoplasty")
    VERTEBROPLASTY = "vertebroplasty", _("Vertebroplasty")


class Procedure(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="procedures")
    kind = models.CharField(max_length=20, choices=ProcedureKind.choices)
    performed_on = models.DateField(validators=[validate_not_in_future], help_text=_("Day 0 of the follow-up."))
    fracture_diagnosed_on = models.DateField(
        null=True,
        blank=True,
        validators=[validate_not_in_future],
        help_text=_("F: starts the fracture-liaison clocks. If unknown, the procedure date is used and flagged."),
    )
    performing_clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notes = models.TextField(blank=True)

    # Procedure-level risk factors (spec §2).
    posterior_fascia_oedema = models.BooleanField(null=True, blank=True, help_text=_("On MRI."))
    facet_joint_violation = models.BooleanField(null=True, blank=True, help_text=_("On post-operative CT."))
    baseline_pain = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(10)],
        help_text=_("Pain NRS 0–10 before the procedure (spec §4)."),
    )
    new_fracture_diagnosed_on = models.DateField(
        null=True,
        blank=True,
        validators=[validate_not_in_future],
        help_text=_("A new vertebral fracture found after this procedure (makes the risk tier high)."),
    )
    protocol_version = models.CharField(
        max_length=20, blank=True, editable=False, help_text=_("Protocol version the schedule was built from.")
    )
    brace_prescribed = models.BooleanField(default=False)
    brace_type = models.CharField(max_length=100, blank=True)
    brace_planned_weeks = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(52)], help_text=_("Planned duration in weeks.")
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_trail()

    class Meta:
        ordering = ["-performed_on", "-id"]
        indexes = [
            # Incremental sync: `GET /api/v1/procedures/?updated_since=…`.
            models.Index(fields=["updated_at"], name="procedure_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} on {self.performed_on}"

    @property
    def fracture_date_assumed(self) -> bool:
        """No diagnosis date: the FLS clocks run from the procedure date instead (spec §3, flagged)."""
        return self.fracture_diagnosed_on is None

    def clean(self) -> None:
        errors = {}
        if self.fracture_diagnosed_on and self.performed_on and self.fracture_diagnosed_on > self.performed_on:
            errors["fracture_diagnosed_on"] = _("The fracture cannot be diagnosed after the procedure.")
        if self.new_fracture_diagnosed_on and self.performed_on and self.new_fracture_diagnosed_on < self.performed_on:
            errors["new_fracture_diagnosed_on"] = _("A new fracture is one found after the procedure.")
        if not self.brace_prescribed and (self.brace_type or self.brace_planned_weeks):
            errors["brace_prescribed"] = _("Brace details were given but no brace is prescribed.")
        if errors:
            raise ValidationError(errors)


class CementDistribution(models.TextChoices):
    CONFLUENT = "confluent", _("Confluent")
    SEPARATED = "separated", _("Separated")


class LeakSite(models.TextChoices):
    INTRADISCAL = "intradiscal", _("Intradiscal")
    PARAVERTEBRAL = "paravertebral", _("Paravertebral")
    VENOUS = "venous", _("Venous")
    CANAL = "canal", _("Spinal canal")
    OTHER = "other", _("Other")


class TreatedLevel(models.Model):
    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="levels")
    level = models.CharField(max_length=3, choices=[(v, v) for v in VERTEBRAE], help_text=_("Vertebra T1–L5."))
    cement_leakage = models.BooleanField(null=True, blank=True)
    leak_site = models.CharField(max_length=20, choices=LeakSite.choices, blank=True)
    cement_distribution = models.CharField(max_length=10, choices=CementDistribution.choices, blank=True)
    intravertebral_cleft = models.BooleanField(null=True, blank=True, help_text=_("On imaging."))
    hounsfield_units = models.SmallIntegerField(
        "CT Hounsfield units",
        null=True,
        blank=True,
        validators=[MinValueValidator(-50), MaxValueValidator(400)],
        help_text=_("CT attenuation at this level in HU, −50 to 400 (spec §2). Scanner-dependent."),
    )
    ct_scanner = models.CharField("CT scanner", max_length=100, blank=True)

    history = audit_trail()

    class Meta:
        ordering = ["procedure", "level"]
        constraints = [models.UniqueConstraint(fields=["procedure", "level"], name="unique_level_per_procedure")]

    def __str__(self) -> str:
        return self.level

    def clean(self) -> None:
        if self.leak_site and self.cement_leakage is not True:
            raise ValidationError({"leak_site": _("A leak site needs cement leakage recorded as yes.")})


class RiskTier(models.TextChoices):
    STANDARD = "standard", _("Standard")
    ELEVATED = "elevated", _("Elevated")
    HIGH = "high", _("High")


class RiskAssessment(models.Model):
    """One assessment of spec §2 for a procedure; the newest is `is_current`, the rest are history."""

    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="risk_assessments")
    tier = models.CharField(max_length=10, choices=RiskTier.choices)
    pain_points = models.PositiveSmallIntegerField()
    fracture_points = models.PositiveSmallIntegerField()
    factors = models.JSONField(default=list, help_text=_("Contributing factors, each with its id and source."))
    missing = models.JSONField(default=list, help_text=_("Facts not recorded: the profile is incomplete."))
    reasons = models.JSONField(default=list)
    protocol_version = models.CharField(max_length=20)
    change_reason = models.CharField(max_length=200, help_text=_("What changed to cause this assessment."))
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["procedure"], condition=models.Q(is_current=True), name="one_current_assessment_per_procedure"
            )
        ]
        indexes = [
            # Worklist: "patients with an incomplete risk profile" and filters by tier.
            models.Index(fields=["tier"], condition=models.Q(is_current=True), name="current_assessment_tier"),
        ]

    def __str__(self) -> str:
        return f"{self.get_tier_display()} ({self.pain_points} pain, {self.fracture_points} fracture points)"

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)


class Audience(models.TextChoices):
    PATIENT_REMINDER = "patient_reminder", _("Patient reminder")
    COORDINATOR_TASK = "coordinator_task", _("Coordinator task")
    CLINICIAN_VISIT = "clinician_visit", _("Clinician visit")


class CheckpointState(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    DUE = "due", _("Due")
    COMPLETED = "completed", _("Completed")
    MISSED = "missed", _("Missed")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_STATES = (CheckpointState.SCHEDULED, CheckpointState.DUE)


class CheckpointQuerySet(models.QuerySet):
    def open(self) -> "CheckpointQuerySet":
        return self.filter(state__in=OPEN_STATES)

    def opening(self, *, at) -> "CheckpointQuerySet":
        return self.filter(state=CheckpointState.SCHEDULED, opens_at__lte=at)

    def overdue(self, *, at) -> "CheckpointQuerySet":
        return self.filter(state__in=OPEN_STATES, closes_at__lte=at)

    def reminder_due(self, *, at) -> "CheckpointQuerySet":
        return self.filter(state__in=OPEN_STATES, next_reminder_at__lte=at, closes_at__gt=at)

    def for_user(self, user) -> "CheckpointQuerySet":
        if user.is_superuser:
            return self
        return self.filter(procedure__patient__clinic__memberships__user=user)


class Checkpoint(models.Model):
    """One planned follow-up item of spec §3 for one procedure.

    Dates are the patient's local calendar; `opens_at`, `due_at` and `closes_at` are the same
    moments in UTC, so that sweeps compare instants and daylight-saving changes are handled once,
    when the row is planned.
    """

    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="checkpoints")
    code = models.CharField(max_length=40, help_text=_("Spec id (CP-xx) or intensification id."))
    sequence = models.PositiveSmallIntegerField(default=1)
    title = models.CharField(max_length=200)
    audience = models.CharField(max_length=20, choices=Audience.choices)
    source = models.CharField(max_length=100)
    protocol_version = models.CharField(max_length=20)
    priority = models.BooleanField(default=False, help_text=_("Priority fracture-liaison referral (high tier)."))
    calendar = models.BooleanField(default=False, help_text=_("Reminders carry an .ics calendar file."))

    window_start = models.DateField()
    target_date = models.DateField()
    window_end = models.DateField()
    opens_at = models.DateTimeField()
    due_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=CheckpointState.choices, default=CheckpointState.SCHEDULED)

    reminder_every_days = models.PositiveSmallIntegerField(default=0)
    reminder_max = models.PositiveSmallIntegerField(default=0)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    next_reminder_at = models.DateTimeField(null=True, blank=True)
    reminder_blocked = models.CharField(
        max_length=100, blank=True, help_text=_("Why the patient is not reminded (no consent, no e-mail).")
    )
    needs_review = models.BooleanField(default=False, help_text=_("Already past when imported: review, not remind."))
    triggered = models.BooleanField(default=False, help_text=_("Created by a finding, not by the plan."))
    rescheduled_at = models.DateTimeField(null=True, blank=True, help_text=_("Moved by staff; re-plans leave it."))
    cancelled_by_staff = models.BooleanField(default=False, help_text=_("Cancelled by staff; re-plans leave it."))

    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome_notes = models.TextField(blank=True)
    pain_score = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(10)])
    dxa_t_score = models.DecimalField(
        "DXA T-score",
        max_digits=3,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(-6), MaxValueValidator(3)],
    )
    dxa_date = models.DateField("DXA date", null=True, blank=True, validators=[validate_not_in_future])
    medication_started = models.BooleanField(null=True, blank=True)
    medication_drug = models.CharField(max_length=100, blank=True)
    medication_started_on = models.DateField(null=True, blank=True, validators=[validate_not_in_future])
    medication_not_started_reason = models.CharField(max_length=200, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CheckpointQuerySet.as_manager()

    class Meta:
        ordering = ["target_date", "code", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["procedure", "code", "sequence"],
                condition=~models.Q(state="cancelled"),
                name="one_live_checkpoint_per_code_and_sequence",
            ),
            models.CheckConstraint(
                condition=models.Q(window_start__lte=models.F("target_date"))
                & models.Q(target_date__lte=models.F("window_end")),
                name="checkpoint_target_inside_window",
            ),
        ]
        indexes = [
            # Reminder sweep: `reminder_due(at=now)`, i.e. open rows with next_reminder_at <= now.
            models.Index(
                fields=["next_reminder_at"],
                condition=models.Q(state__in=["scheduled", "due"], next_reminder_at__isnull=False),
                name="checkpoint_reminder_due",
            ),
            # State sweep: `opening(at=now)`, scheduled rows whose window has opened.
            models.Index(fields=["opens_at"], condition=models.Q(state="scheduled"), name="checkpoint_opening"),
            # State sweep and worklist: `overdue(at=now)`, open rows past their window.
            models.Index(
                fields=["closes_at"], condition=models.Q(state__in=["scheduled", "due"]), name="checkpoint_open_closes"
            ),
            # Incremental sync: `GET /api/v1/checkpoints/?updated_since=…`.
            models.Index(fields=["updated_at"], name="checkpoint_updated_at"),
        ]

    def __str__(self) -> str:
        suffix = f" #{self.sequence}" if self.sequence > 1 else ""
        return f"{self.code}{suffix} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class CheckpointEvent(models.Model):
    """Every transition of a checkpoint, with who or what caused it and why."""

    class Kind(models.TextChoices):
        PLANNED = "planned", _("Planned")
        DUE = "due", _("Became due")
        COMPLETED = "completed", _("Completed")
        MISSED = "missed", _("Missed")
        CANCELLED = "cancelled", _("Cancelled")
        RESCHEDULED = "rescheduled", _("Rescheduled")
        REPLANNED = "replanned", _("Moved by a re-plan")

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=12, choices=SOURCES, default=current_source, editable=False)
    api_client = models.ForeignKey(
        "ApiClient", null=True, blank=True, on_delete=models.SET_NULL, default=current_client_id, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"


class ApiScope(models.TextChoices):
    READ = "read", _("Read")
    WRITE = "write", _("Write")


class ApiClient(models.Model):
    """One EHR integration: its clinics, its scopes and a bearer token stored only as a digest."""

    name = models.CharField(max_length=100)
    clinics = models.ManyToManyField(Clinic, related_name="api_clients")
    scopes = models.JSONField(default=list, help_text=_('"read", "write" or both.'))
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        max_length=12, editable=False, help_text=_("First characters, to tell tokens apart.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, help_text=_("A revoked client is refused at once."))

    history = audit_trail()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyRecord(models.Model):
    """The first response to a POST with an `Idempotency-Key`, replayed for any retry of it."""

    principal = models.CharField(max_length=60, help_text=_("client:<id> or user:<id>"))
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="one_response_per_idempotency_key")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
