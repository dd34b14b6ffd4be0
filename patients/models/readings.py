"""Tier inputs kept as history (spec §2): every DXA result, every pain score reported near day 14,
and the re-assessments that would lower a tier, held for a clinician's confirmation."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .audit import audit_trail
from .patient import Patient
from .procedure import Procedure, RiskTier
from .validators import validate_not_in_future


class DxaResult(models.Model):
    """One DXA scan of a patient: its date and lowest site T-score. Every scan is kept (spec §2); the
    patient's `bmd_lowest_t_score` and `dxa_date` are those of the most recent one. Two results for the
    same date are sites of one scan: the row keeps the lowest."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="dxa_results")
    measured_on = models.DateField(
        null=True, blank=True, validators=[validate_not_in_future], help_text=_("Empty: date not recorded.")
    )
    lowest_t_score = models.DecimalField(
        "lowest site T-score",
        max_digits=3,
        decimal_places=1,
        validators=[MinValueValidator(-6), MaxValueValidator(3)],
    )
    sites = models.CharField(max_length=200, blank=True, help_text=_("Sites measured, when known."))
    source = models.CharField(max_length=40, help_text=_("The path it came by (admin, API, FHIR, import, …)."))
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_trail()

    class Meta:
        ordering = ["-measured_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "measured_on"], nulls_distinct=False, name="one_dxa_result_per_patient_and_date"
            )
        ]

    def __str__(self) -> str:
        return f"DXA {self.measured_on or 'undated'}: {self.lowest_t_score}"


class PainReading(models.Model):
    """A pain score (NRS 0–10) of one procedure on a day after it, from any path (check-in form, phone
    entry, REST, FHIR, a completed checkpoint). The cleft rule of spec §2 reads those near day 14."""

    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="pain_readings")
    day = models.PositiveSmallIntegerField(help_text=_("Days after the procedure, in the patient's time zone."))
    pain = models.PositiveSmallIntegerField(validators=[MaxValueValidator(10)])
    source = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["procedure", "day", "id"]
        indexes = [
            # risk._day14_pain: the readings of one procedure within the day-14 window.
            models.Index(fields=["procedure", "day"], name="painreading_procedure_day"),
        ]

    def __str__(self) -> str:
        return f"Pain {self.pain}/10 on day {self.day}"


class TierDropReview(models.Model):
    """A re-assessment that would lower a procedure's tier (and so cancel intensified follow-up): the
    tier stays until a clinician confirms (spec v0.2 §2). One open per procedure."""

    class State(models.TextChoices):
        OPEN = "open", _("Awaiting a clinician")
        CONFIRMED = "confirmed", _("Confirmed: lower tier applied")
        WITHDRAWN = "withdrawn", _("Withdrawn: no longer lowers the tier")

    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="tier_drop_reviews")
    clinic = models.ForeignKey("patients.Clinic", on_delete=models.CASCADE, related_name="+")
    tier_from = models.CharField("current tier", max_length=10, choices=RiskTier.choices)
    tier_to = models.CharField("proposed tier", max_length=10, choices=RiskTier.choices)
    changes = models.JSONField(default=list, help_text=_("What changed between the two assessments."))
    proposed = models.JSONField(default=dict, help_text=_("The proposed assessment: points, factors, missing."))
    reason = models.CharField(max_length=300, help_text=_("The input change that caused the re-assessment."))
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["procedure"], condition=models.Q(state="open"), name="one_open_tier_drop_per_procedure"
            )
        ]
        indexes = [
            # Worklist: open tier drops of a clinic, oldest first.
            models.Index(fields=["clinic", "created_at"], condition=models.Q(state="open"), name="open_tier_drops"),
        ]

    def __str__(self) -> str:
        return f"Tier {self.tier_from} → {self.tier_to} (#{self.pk})"
