"""The outbox row: one message to one recipient over one channel (a model of the alerts app,
imported by alerts/models.py). Delivered by alerts/outbox.py."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from patients.models import Checkpoint, Clinic, Patient

from .webhook_endpoint import WebhookEndpoint


class DeliveryKind(models.TextChoices):
    REMINDER = "reminder", _("Patient reminder")
    CHECKIN = "checkin", _("Check-in invitation")
    DIGEST = "digest", _("Coordinator digest")
    ALERT = "alert", _("Alert page")
    WEBHOOK = "webhook", _("Webhook event")
    ENROLMENT = "enrolment", _("Two-factor enrolment link")


class Channel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    WEBHOOK = "webhook", _("Webhook")


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed permanently")
    CANCELLED = "cancelled", _("Cancelled")


class DeliveryQuerySet(models.QuerySet):
    def ready(self, *, at) -> "DeliveryQuerySet":
        return self.filter(state=DeliveryState.PENDING, next_attempt_at__lte=at)

    def stuck(self, *, claimed_before) -> "DeliveryQuerySet":
        """Claimed by a worker that never finished (killed, lost connection)."""
        return self.filter(state=DeliveryState.SENDING, claimed_at__lt=claimed_before)


class Delivery(models.Model):
    """One message to one recipient over one channel: the outbox row.

    Written in the same transaction as its cause; `cause` + `channel` + `recipient` is unique, so
    a re-run sweep or a second sweeper can never write the same message twice. A worker claims the
    row by a conditional UPDATE, sends, and marks it sent; a row stuck in `sending` past its lease is
    handed out again (at-least-once: a send killed in flight may be repeated once).
    """

    kind = models.CharField(max_length=12, choices=DeliveryKind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    cause = models.CharField(max_length=120, help_text=_("What made this message, e.g. reminder:<checkpoint>:<n>."))
    recipient = models.CharField(max_length=254)
    # Empty only for a staff member's own sign-in mail when they belong to no clinic.
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    checkin = models.ForeignKey(
        "alerts.CheckIn", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The patient a reminder or check-in invitation is to, so that the weekly cap counts a patient's
    # messages with one index lookup, however many other messages the week holds.
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    alert = models.ForeignKey(
        "alerts.Alert", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    recipient_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    context = models.JSONField(default=dict, blank=True, help_text=_("Ids and codes for the template; no PHI."))

    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    # When the row was last handed to the worker (NULL: not handed out, e.g. the broker was down), so
    # that the sweep hands out only what was lost, once per attempt.
    enqueued_at = models.DateTimeField(null=True, blank=True, db_default=Now())
    # Renewed by the sending worker process while a send is in flight; a stale one means the worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The e-mail exactly as first sent (kept while a retry may follow), so that a retry re-sends the
    # same bytes with the same Message-ID; cleared once the row is final.
    message = models.BinaryField(null=True, blank=True, editable=False)
    # Sends whose end-of-DATA answer never came (the server may have delivered them).
    unknown_outcomes = models.PositiveSmallIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["cause", "channel", "recipient"], name="one_delivery_per_cause"),
            models.CheckConstraint(
                condition=~models.Q(kind__in=["reminder", "checkin"]) | models.Q(patient__isnull=False),
                name="patient_message_names_patient",
                violation_error_message=_("A reminder or check-in invitation names its patient."),
            ),
        ]
        indexes = [
            # Delivery sweep: `ready(at=now)`, pending rows whose next attempt is due.
            models.Index(fields=["next_attempt_at"], condition=models.Q(state="pending"), name="delivery_ready"),
            # Delivery sweep: `stuck(claimed_before=…)`, rows a lost worker left in `sending`.
            models.Index(fields=["claimed_at"], condition=models.Q(state="sending"), name="delivery_stuck"),
            # Worklist: permanent delivery failures per clinic.
            models.Index(fields=["clinic"], condition=models.Q(state="failed"), name="delivery_failed"),
            # Each kind of message names only some of these: indexed only where set.
            *(
                models.Index(fields=[name], condition=models.Q(**{f"{name}__isnull": False}), name=f"delivery_{name}")
                for name in ("checkin", "alert", "recipient_user", "endpoint")
            ),
            # Weekly cap: a patient's reminders and check-in invitations of the last 7 days.
            models.Index(
                fields=["patient", "created_at"],
                condition=models.Q(patient__isnull=False),
                name="delivery_patient_week",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_state_display()})"
