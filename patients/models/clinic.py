"""Clinics and their staff: each membership gives one user one role in one clinic."""

from datetime import time
from zoneinfo import available_timezones

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .audit import audit_trail

TIME_ZONE_CHOICES = sorted((name, name) for name in available_timezones())


def default_protocol_version() -> str:
    from patients.protocol import latest_version

    return latest_version()


def default_working_days() -> list[int]:
    return [0, 1, 2, 3, 4]  # Monday to Friday [DESIGN]


def protocol_version_choices() -> list[tuple[str, str]]:
    from patients.protocol import available_versions

    return [(version, version) for version in available_versions()]


class Clinic(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = models.CharField(max_length=64, choices=TIME_ZONE_CHOICES, help_text=_("IANA time zone."))
    phone = models.CharField(max_length=40, help_text=_("Shown to patients in every message."))
    email = models.EmailField()
    protocol_version = models.CharField(
        max_length=20,
        default=default_protocol_version,
        choices=protocol_version_choices,
        help_text=_("Protocol for new schedules. Existing schedules keep the version they were built from."),
    )
    reminder_time = models.TimeField(
        null=True, blank=True, help_text=_("Local time reminders go out; empty uses the protocol's default.")
    )
    quiet_hours_start = models.TimeField(
        default=time(20, 0), help_text=_("No patient e-mail from this local time… [DESIGN]")
    )
    quiet_hours_end = models.TimeField(
        default=time(8, 0), help_text=_("…until this local time. Equal start and end: no quiet hours. [DESIGN]")
    )
    digest_time = models.TimeField(
        default=time(7, 30), help_text=_("Local time of the daily overdue digest to coordinators. [DESIGN]")
    )
    emergency_number = models.CharField(
        max_length=20,
        validators=[RegexValidator(r"^[0-9+ ]{2,20}$", _("Digits only, e.g. 999, 911 or 112."))],
        help_text=_(
            "The emergency services number where the clinic's patients live (e.g. 999 in the UK, 911 in the US, "
            "112 in the EU). Shown to patients with a tap-to-call link on every page and in every check-in. "
            "Required: there is no default."
        ),
    )
    working_days = ArrayField(
        models.PositiveSmallIntegerField(validators=[MaxValueValidator(6)]),
        default=default_working_days,
        help_text=_(
            "Days the team answers alerts and reviews, as weekday numbers (0 = Monday … 6 = Sunday), e.g. "
            "0,1,2,3,4. Patients are told when the team will respond from these hours and the holidays. [DESIGN]"
        ),
    )
    opens_at = models.TimeField(default=time(9, 0), help_text=_("Local time the team starts on a working day."))
    closes_at = models.TimeField(default=time(17, 0), help_text=_("Local time the team stops on a working day."))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_trail()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.reminder_time and self.in_quiet_hours(self.reminder_time):
            raise ValidationError({"reminder_time": _("The reminder time falls inside the clinic's quiet hours.")})
        if self.opens_at and self.closes_at and self.opens_at >= self.closes_at:
            raise ValidationError({"closes_at": _("The team must stop after it starts.")})
        if self.working_days is not None and not self.working_days:
            raise ValidationError({"working_days": _("Give at least one working day.")})

    def in_quiet_hours(self, moment: time) -> bool:
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if start <= end:
            return start <= moment < end
        return moment >= start or moment < end


class ClinicHoliday(models.Model):
    """A day the clinic's team does not work (a public holiday, a closure): not a working day for
    any response promise."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="holidays")
    day = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    history = audit_trail()

    class Meta:
        ordering = ["day"]
        constraints = [models.UniqueConstraint(fields=["clinic", "day"], name="one_holiday_per_clinic_and_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.name}".strip()


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
    on_call = models.BooleanField(default=False, help_text=_("Last step of the alert escalation chain."))

    history = audit_trail()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_role_per_user_and_clinic")]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_role_display()} at {self.clinic}"
