"""Everything that reaches a person or a system: check-ins and their reports, red-flag alerts and
their escalation, webhooks, the outbox of deliveries, and the worker heartbeat."""

import hashlib
import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from patients.audit import SOURCES, current_client_id, current_source
from patients.models import ApiClient, Checkpoint, Clinic, Patient, Procedure, audit_trail
from patients.protocol import NOTIFY_TARGETS

from .delivery import (  # noqa: F401 - models of this app
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryQuerySet,
    DeliveryState,
)
from .painkillers import validate_painkillers
from .webhook_endpoint import WebhookEndpoint  # noqa: F401 - a model of this app


def new_token() -> tuple[str, str]:
    """A random URL token and its SHA-256 digest; only the digest is stored."""
    raw = secrets.token_urlsafe(32)
    return raw, token_digest(raw)


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class Tier(models.TextChoices):
    EMERGENCY = "emergency", _("Emergency")
    URGENT = "urgent", _("Urgent")
    ROUTINE = "routine", _("Routine")


# --- Check-ins ----------------------------------------------------------------------------------


class CheckInState(models.TextChoices):
    INVITED = "invited", _("Invited")
    ANSWERED = "answered", _("Answered")
    CALL_NEEDED = "call_needed", _("Phone call needed")
    CALLED = "called", _("Call logged")
    CANCELLED = "cancelled", _("Cancelled")


class CheckIn(models.Model):
    """One invitation to answer the symptom form, tied to one patient and (usually) one checkpoint."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="checkins")
    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="checkins")
    checkpoint = models.OneToOneField(
        Checkpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="checkin"
    )
    reason = models.CharField(max_length=60, help_text=_("Checkpoint code or the rule that asked for it."))
    state = models.CharField(max_length=12, choices=CheckInState.choices, default=CheckInState.INVITED)
    invitations_sent = models.PositiveSmallIntegerField(default=0)
    next_action_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When an unanswered invitation is re-sent or becomes a call task.")
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    call_logged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    call_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Check-in sweep: invited rows whose next action (re-send, call task) is due.
            models.Index(fields=["next_action_at"], condition=models.Q(state="invited"), name="checkin_next_action"),
        ]

    def __str__(self) -> str:
        return f"Check-in #{self.pk} ({self.get_state_display()})"


class CheckInLink(models.Model):
    """A single-use, expiring link to one check-in; the token itself is never stored."""

    checkin = models.ForeignKey(CheckIn, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Link for check-in #{self.checkin_id}"


class PainkillerUse(models.TextChoices):
    NONE = "none", _("None")
    NON_OPIOID = "non_opioid", _("Non-opioid (e.g. paracetamol, ibuprofen)")
    OPIOID = "opioid", _("Opioid (e.g. codeine, tramadol, morphine)")


class ReportSource(models.TextChoices):
    FORM = "form", _("Patient form")
    PHONE = "phone", _("Phone call (entered by staff)")
    API = "api", _("EHR API")
    FHIR = "fhir", _("FHIR QuestionnaireResponse")


class SymptomReport(models.Model):
    """What the patient reported (spec §4) and the findings the rules drew from it."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="symptom_reports")
    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="symptom_reports")
    checkin = models.OneToOneField(CheckIn, null=True, blank=True, on_delete=models.SET_NULL, related_name="report")
    source = models.CharField(max_length=10, choices=ReportSource.choices)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reported_at = models.DateTimeField(default=timezone.now)
    day = models.IntegerField(help_text=_("Days since the procedure."))
    pain_now = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(10)])
    pain_average_24h = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(10)])
    red_flags = models.JSONField(default=list, blank=True, help_text=_("RF codes answered yes."))
    painkillers = ArrayField(
        models.CharField(max_length=12, choices=PainkillerUse.choices),
        default=list,
        blank=True,
        validators=[validate_painkillers],
    )
    fell_since_last = models.BooleanField(null=True, blank=True)
    missed_medication_doses = models.BooleanField(null=True, blank=True)
    medication_side_effects = models.BooleanField(null=True, blank=True)
    wearing_brace = models.BooleanField(null=True, blank=True)
    doing_physio = models.BooleanField(null=True, blank=True)
    second_opinion = models.JSONField(default=dict, blank=True, help_text=_('SO answers, e.g. {"SO-2": "no"}.'))
    other_symptoms = models.TextField(blank=True, max_length=2000)
    unanswered = models.JSONField(
        default=list, blank=True, help_text=_("Questions left unanswered: a partial report (capture rules, spec §1).")
    )
    findings = models.JSONField(default=list, blank=True, help_text=_("Codes, tiers and evidence from the rules."))
    notes = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            "How the report was taken, for staff: answers dropped as unreadable (field and why), the patient's "
            "status when not active, a check-in cancelled while it was being answered. No patient identifiers."
        ),
    )
    answer_changes = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Answers changed on a later page: the question, the answer first sent, the new one, when."),
    )
    protocol_version = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-reported_at", "-id"]
        indexes = [
            # Trend rules: the earlier reports of one procedure in time order.
            models.Index(fields=["procedure", "reported_at"], name="report_procedure_time"),
            models.Index(fields=["updated_at"], name="report_updated_at"),
        ]

    def __str__(self) -> str:
        return f"Report #{self.pk} (day {self.day})"


# --- Alerts -------------------------------------------------------------------------------------


class AlertState(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Resolved")


class ResolutionReason(models.TextChoices):  # asked with every resolution, with a note (HAZ-47)
    MANAGED = "managed", _("Patient assessed, care arranged")
    REFERRED = "referred", _("Sent to emergency or other care")
    NO_ACTION = "no_action", _("Assessed, no action needed")
    DUPLICATE = "duplicate", _("Duplicate of another alert")
    ENTERED_IN_ERROR = "entered_in_error", _("Report entered in error")
    OTHER = "other", _("Other (say in the note)")


class Alert(models.Model):
    """A red flag that a clinician must acknowledge; unacknowledged, it escalates along its policy.

    One open (or acknowledged) alert per patient and rule: a repeat report updates it instead.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="alerts")
    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="alerts")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=30, help_text=_("Rule id, e.g. RF-01."))
    tier = models.CharField(max_length=10, choices=Tier.choices)
    state = models.CharField(max_length=12, choices=AlertState.choices, default=AlertState.OPEN)
    protocol_version = models.CharField(max_length=20)
    rule_source = models.CharField(max_length=100)
    action = models.CharField(max_length=200, help_text=_("What the clinician should do (spec §1)."))
    answers = models.JSONField(default=dict, help_text=_("The answers and evidence that fired it."))
    first_report = models.ForeignKey(SymptomReport, on_delete=models.PROTECT, related_name="+")
    last_report = models.ForeignKey(SymptomReport, on_delete=models.PROTECT, related_name="+")
    count = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    policy = models.JSONField(help_text=_("Escalation steps as they were when the alert was raised."))
    level = models.PositiveSmallIntegerField(default=0, help_text=_("Escalation steps already notified."))
    policy_started_at = models.DateTimeField(help_text=_("Escalation steps count from here (raised or tier raised)."))
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    repeats = models.PositiveIntegerField(default=0, help_text=_("Last step paged again this often (HAZ-45)."))
    nobody_paged_at = models.DateTimeField(null=True, blank=True, help_text=_("The last page found no one (HAZ-44)."))

    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_via = models.CharField(max_length=20, blank=True)
    acknowledge_note = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolve_reason = models.CharField(max_length=20, choices=ResolutionReason.choices, blank=True)
    resolve_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "code"],
                condition=models.Q(state__in=["open", "acknowledged"]),
                name="one_live_alert_per_patient_and_rule",
            )
        ]
        indexes = [
            # Escalation sweep: open alerts whose next escalation step is due.
            models.Index(fields=["next_escalation_at"], condition=models.Q(state="open"), name="alert_escalation_due"),
            # Worklist: open alerts by clinic.
            models.Index(fields=["clinic", "tier"], condition=models.Q(state="open"), name="alert_open_by_clinic"),
            models.Index(fields=["updated_at"], name="alert_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.get_tier_display()} alert #{self.pk}"


class AlertEvent(models.Model):
    class Kind(models.TextChoices):
        RAISED = "raised", _("Raised")
        REPEATED = "repeated", _("Reported again")
        REOPENED = "reopened", _("Reported again after acknowledgement: live again")
        TIER_RAISED = "tier_raised", _("Tier raised")
        NOTIFIED = "notified", _("Notified")
        ESCALATED = "escalated", _("Escalated")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        RESOLVED = "resolved", _("Resolved")
        UNRESOLVED = "unresolved", _("Reopened after being resolved")
        STEP_EMPTY = "step_empty", _("Step had no one to page: passed on")
        NOBODY_PAGED = "nobody_paged", _("Nobody could be paged")
        DELIVERY_FAILED = "delivery_failed", _("Delivery failed")
        NOTE = "note", _("Note")

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=12, choices=SOURCES, default=current_source, editable=False)
    api_client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.SET_NULL, default=current_client_id, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"


class AcknowledgeLink(models.Model):
    """The one-click acknowledge link in an alert e-mail: single use, bound to one alert and one person."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="ack_links")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Acknowledge link for alert #{self.alert_id}"


class ReviewTask(models.Model):
    """A clinician review (second-opinion triggers, PAIN_NOT_IMPROVING, the day-14 early warning, a
    patient's free text, clinician-entered SO-3 and revision considerations): not a page."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        DONE = "done", _("Done")

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="review_tasks")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=30)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.ROUTINE)
    action = models.CharField(max_length=200)
    source = models.CharField(max_length=100)
    report = models.ForeignKey(SymptomReport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.TextField(
        blank=True, help_text=_("The patient's own words, or the note of the clinician who entered it.")
    )
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=5, choices=State.choices, default=State.OPEN)
    due_at = models.DateTimeField(help_text=_("ROUTINE: within 2 working days of the clinic's working time [DESIGN]."))
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "code"],
                condition=models.Q(state="open"),
                name="one_open_review_per_patient_and_code",
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} review #{self.pk}"


class EscalationPolicy(models.Model):
    """Who is notified when, per clinic and tier. `steps` is a list of
    `{"after_minutes": N, "notify": "responsible_clinician" | "coordinators" | "on_call"}`, the first
    at 0 minutes. An alert copies the steps when it is raised and keeps them."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="escalation_policies")
    tier = models.CharField(max_length=10, choices=Tier.choices)
    steps = models.JSONField()
    source = models.CharField(max_length=100, default="[DESIGN]")
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_trail()

    class Meta:
        verbose_name_plural = "escalation policies"
        constraints = [models.UniqueConstraint(fields=["clinic", "tier"], name="one_policy_per_clinic_and_tier")]

    def __str__(self) -> str:
        return f"{self.get_tier_display()} escalation"

    def clean(self) -> None:
        targets = set(NOTIFY_TARGETS)
        if not isinstance(self.steps, list) or not self.steps:
            raise ValidationError({"steps": _("Give at least one step.")})
        previous = -1
        for index, step in enumerate(self.steps):
            if not isinstance(step, dict) or step.get("notify") not in targets:
                raise ValidationError(
                    {
                        "steps": _("Step %(n)s: notify must be one of %(t)s.")
                        % {"n": index + 1, "t": ", ".join(sorted(targets))}
                    }
                )
            minutes = step.get("after_minutes")
            if not isinstance(minutes, int) or minutes <= previous:
                raise ValidationError(
                    {"steps": _("Step %(n)s: after_minutes must be a whole number, increasing.") % {"n": index + 1}}
                )
            previous = minutes
        if self.steps[0]["after_minutes"] != 0:
            raise ValidationError({"steps": _("The first step must notify at 0 minutes.")})


# --- Outbox -------------------------------------------------------------------------------------


class DigestRun(models.Model):
    """The daily coordinator digest of one clinic for one local date: written once, never twice."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    local_date = models.DateField()
    since = models.DateTimeField()
    until = models.DateTimeField()
    missed_count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clinic", "local_date"], name="one_digest_per_clinic_day")]

    def __str__(self) -> str:
        return f"Digest {self.local_date}"


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by a beat-ticked task; /health/ reads the newest."""

    hostname = models.CharField(max_length=200, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
