"""A clinic's webhook endpoint (a model of the alerts app, imported by alerts/models.py)."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from patients.models import CheckpointEvent, Clinic, audit_trail

from .webhook_addresses import url_problem
from .webhook_secrets import webhook_secret_problem


class WebhookEndpoint(models.Model):
    """A clinic's EHR endpoint for alert and checkpoint events, signed Standard Webhooks style.

    Its URL must be a public https:// address (alerts/webhook_addresses.py). A new endpoint receives
    only events that happen after it was created. A receiver answering 410 Gone disables it; the
    reason stays on the row (and in its history) until a clinic admin turns it on again."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, help_text=_("whsec_… shared secret used to sign payloads."))
    events = models.JSONField(
        default=list, blank=True, help_text=_('Event types, e.g. ["alert.raised", "checkpoint.missed"]; empty: all.')
    )
    active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(
        max_length=300, blank=True, editable=False, help_text=_("Why sending stopped, e.g. the receiver answered 410.")
    )
    checkpoint_events_after = models.BigIntegerField(
        default=0, editable=False, help_text=_("Checkpoint events up to this id have been queued for this endpoint.")
    )

    history = audit_trail(excluded_fields=["secret", "checkpoint_events_after"])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "alerts"

    def __str__(self) -> str:
        return f"Webhook #{self.pk} ({self.clinic})"

    def save(self, *args, **kwargs):
        if self._state.adding and not self.checkpoint_events_after:
            # No backlog: checkpoint events written before the endpoint existed are not relayed to it.
            last = CheckpointEvent.objects.order_by("-id").values_list("id", flat=True).first()
            self.checkpoint_events_after = last or 0
        if self.active and self.disabled_reason:
            self.disabled_at, self.disabled_reason = None, ""  # turned on again by a clinic admin
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        errors = {}
        problem = webhook_secret_problem(self.secret or "")
        if problem:
            errors["secret"] = problem
        problem = url_problem(self.url or "")
        if problem:
            errors["url"] = _("This address cannot receive webhooks: %(why)s.") % {"why": problem}
        if errors:
            raise ValidationError(errors)
