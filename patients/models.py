"""The registry: clinics, their staff, patients, procedures and treated levels.

Risk-factor fields are named after `shared/clinical/spec.md` §2 and validated to its ranges.
"""

from datetime import date
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

TIME_ZONE_CHOICES = sorted((name, name) for name in available_timezones())
VERTEBRAE = [f"T{n}" for n in range(1, 13)] + [f"L{n}" for n in range(1, 6)]


def validate_not_in_future(value: date) -> None:
    if value > timezone.localdate():
        raise ValidationError(_("This date is in the future."), code="future_date")


class Clinic(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = models.CharField(max_length=64, choices=TIME_ZONE_CHOICES, help_text=_("IANA time zone."))
    phone = models.CharField(max_length=40, help_text=_("Shown to patients in every message."))
    email = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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
    brace_prescribed = models.BooleanField(default=False)
    brace_type = models.CharField(max_length=100, blank=True)
    brace_planned_weeks = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(52)], help_text=_("Planned duration in weeks.")
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-performed_on", "-id"]
        indexes = [
            # Incremental sync: `GET /api/v1/procedures/?updated_since=…`.
            models.Index(fields=["updated_at"], name="procedure_updated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} on {self.performed_on}"

    def clean(self) -> None:
        errors = {}
        if self.fracture_diagnosed_on and self.performed_on and self.fracture_diagnosed_on > self.performed_on:
            errors["fracture_diagnosed_on"] = _("The fracture cannot be diagnosed after the procedure.")
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

    class Meta:
        ordering = ["procedure", "level"]
        constraints = [models.UniqueConstraint(fields=["procedure", "level"], name="unique_level_per_procedure")]

    def __str__(self) -> str:
        return self.level

    def clean(self) -> None:
        if self.leak_site and self.cement_leakage is not True:
            raise ValidationError({"leak_site": _("A leak site needs cement leakage recorded as yes.")})
