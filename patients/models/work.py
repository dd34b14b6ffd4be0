"""The coordinator's handling of one kind of work for one patient: who has it, and, for a phone call
that did not reach the patient, when to try again. The worklist shows one row per patient per kind."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .audit import audit_trail
from .patient import Patient


class WorkKind(models.TextChoices):
    ALERT = "alert", _("Alerts")
    CHECKPOINT = "checkpoint", _("Checkpoints")
    CALL = "call", _("Phone calls")
    REVIEW = "review", _("Clinician reviews")


class CallOutcome(models.TextChoices):
    SPOKE = "spoke", _("Spoke to the patient")
    NO_ANSWER = "no_answer", _("No answer")
    VOICEMAIL = "voicemail", _("Left a voicemail")


class WorkItem(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="work_items")
    kind = models.CharField(max_length=12, choices=WorkKind.choices)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retry_at = models.DateTimeField(
        _("try again at"), null=True, blank=True, help_text=_("The call comes back on the worklist at this time.")
    )
    last_outcome = models.CharField(_("last call"), max_length=12, choices=CallOutcome.choices, blank=True)
    last_note = models.TextField(_("last call note"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("calls without reaching the patient"), default=0)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_trail()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "kind"], name="one_work_item_per_patient_and_kind")]
        indexes = [
            # Worklist "assigned to me": `WorkItem.objects.filter(assigned_to=user, kind=…)`.
            models.Index(fields=["assigned_to", "kind"], name="work_item_assignee"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of patient #{self.patient_id}"
