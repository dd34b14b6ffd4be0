"""Procedures, the vertebrae they treated and their risk assessments; risk-factor fields are named after
`shared/clinical/spec.md` §2 and validated to its ranges."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .audit import audit_trail
from .patient import Patient
from .validators import validate_not_in_future

VERTEBRAE = [f"T{n}" for n in range(1, 13)] + [f"L{n}" for n in range(1, 6)]
VERTEBRA_CHOICES = [(v, v) for v in VERTEBRAE]  # one choice set: the API schema names it LevelEnum


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
    # Spec §2 ct_hu: measured at any level T1–L5, usually an untreated one such as L1; scanner-dependent.
    ct_hu = models.SmallIntegerField(
        "CT Hounsfield units",
        null=True,
        blank=True,
        validators=[MinValueValidator(-50), MaxValueValidator(400)],
        help_text=_("CT attenuation in HU, −50 to 400 (spec §2), at the level below (treated or not)."),
    )
    ct_hu_level = models.CharField(
        "HU measured at",
        max_length=3,
        blank=True,
        choices=VERTEBRA_CHOICES,
        help_text=_("Vertebra T1–L5 where the HU was measured, usually an untreated one such as L1."),
    )
    ct_hu_scanner = models.CharField("HU scanner", max_length=100, blank=True)
    new_fracture_diagnosed_on = models.DateField(
        null=True,
        blank=True,
        validators=[validate_not_in_future],
        help_text=_("A new vertebral fracture found after this procedure (makes the risk tier high)."),
    )
    protocol_version = models.CharField(
        max_length=20, blank=True, editable=False, help_text=_("Protocol version the schedule was built from.")
    )
    medication_deadline_checked_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text=_("When the daily sweep scored 'no medication by week 16' after the patient's local deadline."),
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
        if self.ct_hu is not None and not self.ct_hu_level:
            errors["ct_hu_level"] = _("Give the level the HU was measured at.")
        if self.ct_hu_level and self.ct_hu is None:
            errors["ct_hu"] = _("A level was given but no HU value.")
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
    level = models.CharField(max_length=3, choices=VERTEBRA_CHOICES, help_text=_("Vertebra T1–L5."))
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
