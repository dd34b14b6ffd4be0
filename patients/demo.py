"""Demo data for `make run`: one clinic, its staff and patients at different points after their procedure.

All names are invented. Running it again changes nothing that is already there.
"""

from dataclasses import dataclass
from datetime import time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from .models import Clinic, ClinicMembership, Patient, ProcedureKind, StaffRole
from .roles import sync_staff_groups
from .services import record_procedure, register_patient

DEMO_CLINIC_SLUG = "demo-spine"
DEMO_PASSWORD = "kyphofollow-demo"  # noqa: S105 - printed by `make run`; the demo is for a laptop, never a server
DEMO_USERS = {
    "coordinator": ("Casey", "Coordinator", StaffRole.COORDINATOR),
    "clinician": ("Dr Robin", "Clinician", StaffRole.CLINICIAN),
    "oncall": ("Dr Sam", "On-call", StaffRole.CLINICIAN),
}

# (days since procedure, fracture days before procedure, age, profile)
_PROFILES = [
    (0, 10, 72, {"cleft": False, "distribution": "confluent", "hu": 140, "t_score": "-1.8", "level": "L3"}),
    (1, 12, 81, {"cleft": True, "distribution": "separated", "hu": 60, "t_score": "-3.7", "level": "T12"}),
    (2, 7, 68, {"distribution": "confluent", "hu": 120, "level": "L2", "leak": True}),
    (5, 20, 77, {"cleft": True, "oedema": True, "hu": 95, "t_score": "-2.6", "level": "L1"}),
    (9, 14, 84, {"facet": True, "hu": 80, "level": "T11"}),
    (12, 9, 66, {"distribution": "separated", "hu": 150, "t_score": "-1.2", "level": "L4"}),
    (15, 30, 79, {"cleft": False, "hu": 110, "level": "T8"}),
    (20, 11, 90, {"oedema": True, "distribution": "separated", "hu": 55, "level": "L1", "leak": True}),
    (28, 16, 73, {"hu": 130, "t_score": "-2.9", "level": "L5", "medication": True}),
    (35, 8, 70, {}),
    (41, 21, 82, {"cleft": True, "hu": 99, "level": "T12"}),
    (50, 10, 75, {"facet": True, "oedema": True, "level": "L2"}),
    (63, 13, 87, {"hu": 62, "t_score": "-3.9", "level": "T10", "leak": True}),
    (80, 25, 69, {"distribution": "confluent", "hu": 175, "t_score": "-0.8", "level": "L3", "medication": True}),
    (95, 18, 78, {"cleft": True, "distribution": "separated", "level": "L1"}),
    (110, 12, 83, {"hu": 101, "level": "T9"}),
    (150, 40, 71, {"hu": 140, "t_score": "-2.4", "level": "L4", "medication": True}),
    (185, 15, 80, {"oedema": True, "level": "T12", "leak": True}),
    (240, 22, 76, {"hu": 88, "level": "L2"}),
    (350, 30, 85, {"cleft": True, "facet": True, "hu": 70, "t_score": "-3.1", "level": "L1"}),
]
_GIVEN = ["Ada", "Bea", "Cyril", "Dora", "Elio", "Fay", "Gus", "Hana", "Ivo", "Jun"]
_FAMILY = ["Demo", "Sample", "Example", "Testperson"]


@dataclass
class SeedResult:
    clinic: Clinic
    patients_created: int
    patients_existing: int


def _ensure_user(username: str, first: str, last: str):
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"first_name": first, "last_name": last, "email": f"{username}@demo-clinic.invalid", "is_staff": True},
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


def _demo_clinic() -> Clinic:
    clinic, _ = Clinic.objects.get_or_create(
        slug=DEMO_CLINIC_SLUG,
        defaults={
            "name": "Demo Spine Clinic",
            "time_zone": "Europe/London",
            "phone": "+44 20 7946 0000",
            "email": "spine-team@demo-clinic.invalid",
            "emergency_number": "999",
            # No quiet hours in the demo, so that messages can be watched arriving at any hour.
            "quiet_hours_start": time(0, 0),
            "quiet_hours_end": time(0, 0),
        },
    )
    if not clinic.emergency_number:  # a demo clinic made before the field existed
        clinic.emergency_number = "999"
        clinic.save(update_fields=["emergency_number", "updated_at"])
    return clinic


def _demo_staff(clinic: Clinic) -> dict:
    users = {}
    for username, (first, last, role) in DEMO_USERS.items():
        users[username] = _ensure_user(username, first, last)
        ClinicMembership.objects.get_or_create(
            user=users[username], clinic=clinic, defaults={"role": role, "on_call": username == "oncall"}
        )
        sync_staff_groups(users[username])
    return users


def _register_demo_patient(clinic: Clinic, index: int, clinician) -> Patient:
    days_since, _, age, profile = _PROFILES[index]
    today = timezone.localdate()
    medication = profile.get("medication", False)
    return register_patient(
        clinic=clinic,
        mrn=f"DEMO{index + 1:04d}",
        given_name=_GIVEN[index % len(_GIVEN)],
        family_name=_FAMILY[index % len(_FAMILY)],
        birth_date=today.replace(year=today.year - age) - timedelta(days=40 + index),
        sex="female" if index % 3 else "male",
        email=f"patient{index + 1}@demo-patient.invalid",
        phone=f"+4420794600{index + 10:02d}",  # Ofcom's drama range for London (020 7946 0xxx): never a real line
        time_zone="Europe/London",
        email_consent=index % 7 != 3,
        responsible_clinician=clinician,
        bmd_lowest_t_score=Decimal(profile["t_score"]) if "t_score" in profile else None,
        dxa_date=today - timedelta(days=days_since + 30) if "t_score" in profile else None,
        regular_outdoor_activity=index % 2 == 0,
        on_osteoporosis_med=medication,
        osteoporosis_drug="alendronate" if medication else "",
        osteoporosis_med_started_on=today - timedelta(days=days_since) if medication else None,
        bmi=Decimal("18.5") + index % 9,
        prior_vertebral_fractures=index % 3,
    )


def _record_demo_procedure(patient: Patient, index: int, clinician) -> None:
    days_since, fracture_lead, _, profile = _PROFILES[index]
    performed_on = timezone.localdate() - timedelta(days=days_since)
    level = {
        "level": profile.get("level", "L1"),
        "cement_leakage": profile.get("leak", False),
        "leak_site": "paravertebral" if profile.get("leak") else "",
        "cement_distribution": profile.get("distribution", ""),
        "intravertebral_cleft": profile.get("cleft"),
        "hounsfield_units": profile.get("hu"),
    }
    record_procedure(
        patient=patient,
        kind=ProcedureKind.KYPHOPLASTY if index % 4 else ProcedureKind.VERTEBROPLASTY,
        performed_on=performed_on,
        fracture_diagnosed_on=performed_on - timedelta(days=fracture_lead),
        performing_clinician=clinician,
        posterior_fascia_oedema=profile.get("oedema", False),
        facet_joint_violation=profile.get("facet", False),
        baseline_pain=5 + index % 5,
        levels=[level],
    )


@transaction.atomic
def seed_demo() -> SeedResult:
    """The demo clinic, its staff and a patient per profile, each registered and its procedure
    recorded through the same services as the API; patients already there are left as they are."""
    clinic = _demo_clinic()
    clinician = _demo_staff(clinic)["clinician"]
    created = existing = 0
    for index in range(len(_PROFILES)):
        if Patient.objects.filter(clinic=clinic, mrn=f"DEMO{index + 1:04d}").exists():
            existing += 1
            continue
        patient = _register_demo_patient(clinic, index, clinician)
        _record_demo_procedure(patient, index, clinician)
        created += 1
    return SeedResult(clinic=clinic, patients_created=created, patients_existing=existing)
