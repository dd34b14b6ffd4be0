"""Patients of a clinic, with the patient-level risk factors of `shared/clinical/spec.md` §2 validated
to its ranges."""

from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField

from .audit import audit_trail
from .clinic import TIME_ZONE_CHOICES, Clinic
from .validators import validate_not_in_future


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
    def active(self) -> "PatientQuerySet":
        return self.filter(status=PatientStatus.ACTIVE)


class Patient(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField(_("MRN"), max_length=40, help_text=_("Medical record number, unique within the clinic."))
    mrn_system = models.CharField(
        _("MRN system"),
        max_length=255,
        blank=True,
        help_text=_("The identifier system (URI) the EHR sent the MRN under over FHIR; empty when not given."),
    )
    given_name = models.CharField(_("given name"), max_length=100)
    family_name = models.CharField(_("family name"), max_length=100)
    birth_date = models.DateField(_("birth date"), validators=[validate_not_in_future])
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    email = models.EmailField(_("e-mail"), blank=True)
    phone = PhoneNumberField(
        _("phone"), blank=True, help_text=_("International format with the country code, e.g. +44 20 7946 0000.")
    )
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

    @property
    def display_name(self) -> str:
        """For staff screens only (never logs, e-mails or URLs)."""
        return f"{self.family_name}, {self.given_name}"

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
