"""Checkpoints: the planned follow-up items of `shared/clinical/spec.md` §3, and every transition of each."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from patients.audit import SOURCES, current_client_id, current_source

from .procedure import Procedure
from .validators import validate_not_in_future


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
    calendar = models.BooleanField(default=False, help_text=_("A scan the patient books (protocol data)."))
    appointment_at = models.DateTimeField(
        null=True, blank=True, help_text=_("The booked appointment; only then do reminders carry an .ics file.")
    )

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
        BOOKED = "booked", _("Appointment booked")
        REPLANNED = "replanned", _("Moved by a re-plan")

    # No database constraint: the planner writes an event with each of the tens of thousands of
    # checkpoints an import plans, and the database re-checking each at commit cost more than planning
    # them. Events are written only by patients/services/checkpoints.py, for checkpoints it has just
    # written or holds locked, and checkpoints are deleted only through the ORM, which deletes their
    # events with them (on_delete=CASCADE); tests/patients/test_rows.py checks both.
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="events", db_constraint=False)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    reason = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=12, choices=SOURCES, default=current_source, editable=False)
    api_client = models.ForeignKey(
        "ApiClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        default=current_client_id,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ["at", "id"]
        # Sweeps and the planner write events by the ten thousand, nearly all by no user and no API
        # client: those two are indexed only where set (what deleting a user or client looks up).
        indexes = [
            models.Index(fields=["by"], condition=models.Q(by__isnull=False), name="checkpoint_event_by"),
            models.Index(
                fields=["api_client"], condition=models.Q(api_client__isnull=False), name="checkpoint_event_client"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"
