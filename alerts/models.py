"""Everything that reaches a person or a system: the outbox of deliveries, and the worker heartbeat."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from patients.models import Checkpoint, Clinic


class DeliveryKind(models.TextChoices):
    REMINDER = "reminder", _("Patient reminder")
    DIGEST = "digest", _("Coordinator digest")


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
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    context = models.JSONField(default=dict, blank=True, help_text=_("Ids and codes for the template; no PHI."))

    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["cause", "channel", "recipient"], name="one_delivery_per_cause"),
        ]
        indexes = [
            # Delivery sweep: `ready(at=now)`, pending rows whose next attempt is due.
            models.Index(fields=["next_attempt_at"], condition=models.Q(state="pending"), name="delivery_ready"),
            # Delivery sweep: `stuck(claimed_before=…)`, rows a lost worker left in `sending`.
            models.Index(fields=["claimed_at"], condition=models.Q(state="sending"), name="delivery_stuck"),
            # Worklist: permanent delivery failures per clinic.
            models.Index(fields=["clinic"], condition=models.Q(state="failed"), name="delivery_failed"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_state_display()})"


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
