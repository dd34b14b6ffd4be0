"""Builders for tests and benchmarks: plain functions with keyword arguments that make rows.

One at a time, rows are made through the services, as the admin, the API and the import make them
(`make_patient` registers, `make_procedure` records and plans). Many at once, for query counts and
benchmarks, they are inserted in bulk with the shape the services would write (`bulk_*`), a few
statements per call whatever the count. Fixtures in the conftest files call these functions; the
benchmarks in bench/ import them too, so no figure is built on data of its own.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlparse

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.checkins import sweep_checkins
from alerts.models import Alert, CheckIn, Delivery, DeliveryKind, SymptomReport
from alerts.outbox import deliver
from alerts.reminders import sweep_reminders
from interop.auth import create_api_client
from patients.models import Checkpoint, Clinic, ClinicMembership, Patient, Procedure, TreatedLevel
from patients.roles import sync_staff_groups
from patients.services import record_procedure, register_patient

STAFF_PASSWORD = "correct-horse-battery"
BATCH = 2000  # rows per INSERT: one statement for any test, a few for a benchmark

# --- Clinics and staff --------------------------------------------------------------------------


def make_clinic(
    *,
    name: str = "Northside Spine",
    slug: str = "northside",
    time_zone: str = "Europe/London",
    phone: str = "+44 20 0000 0001",
    email: str = "spine@northside.invalid",
    emergency_number: str = "999",
    **fields,
) -> Clinic:
    return Clinic.objects.create(
        name=name,
        slug=slug,
        time_zone=time_zone,
        phone=phone,
        email=email,
        emergency_number=emergency_number,
        **fields,
    )


def make_staff(*, username: str, clinic: Clinic, role: str, password: str | None = STAFF_PASSWORD, **extra):
    """A staff user with a `role` membership of `clinic` and that role's permission groups; `password=None`
    gives an unusable password (a user who never logs in)."""
    user = get_user_model().objects.create_user(
        username=username, password=password, email=f"{username}@staff.invalid", is_staff=True, **extra
    )
    ClinicMembership.objects.create(user=user, clinic=clinic, role=role)
    sync_staff_groups(user)
    return user


def bulk_staff(*, clinic: Clinic, role: str, count: int, prefix: str, on_call: bool = False) -> list:
    """`count` active staff users with e-mail addresses and a `role` membership, made in two queries."""
    user_model = get_user_model()
    password = make_password(None)  # unusable: these users never log in
    users = user_model.objects.bulk_create(
        user_model(username=f"{prefix}{n:04d}", email=f"{prefix}{n:04d}@staff.invalid", password=password)
        for n in range(count)
    )
    ClinicMembership.objects.bulk_create(
        ClinicMembership(user=user, clinic=clinic, role=role, on_call=on_call) for user in users
    )
    return users


# --- Patients and procedures, one at a time -----------------------------------------------------


def birth_date_for_age(age: int) -> date:
    today = timezone.localdate()
    return today.replace(year=today.year - age) - timedelta(days=10)


def patient_fields(*, clinic: Clinic, number: int, **fields) -> dict:
    """Patient `number` of `clinic`: 75 years old, in London, with an e-mail address and consent to use it."""
    return {
        "clinic": clinic,
        "mrn": f"MRN{number:05d}",
        "given_name": "Given",
        "family_name": "Family",
        "birth_date": birth_date_for_age(75),
        "time_zone": "Europe/London",
        "email": f"patient{number}@example.invalid",
        "email_consent": True,
        **fields,
    }


def make_patient(*, clinic: Clinic, number: int, **fields) -> Patient:
    """A patient registered through `register_patient`, as the admin and the API register one."""
    return register_patient(**patient_fields(clinic=clinic, number=number, **fields))


def procedure_fields(**fields) -> dict:
    """A kyphoplasty done yesterday, for a fracture diagnosed ten days ago."""
    today = timezone.localdate()
    return {
        "kind": "kyphoplasty",
        "performed_on": today - timedelta(days=1),
        "fracture_diagnosed_on": today - timedelta(days=10),
        **fields,
    }


def make_procedure(*, patient: Patient, levels: list[dict] | None = None, **fields) -> Procedure:
    """A procedure recorded (and so assessed and planned) through `record_procedure`; L1 unless `levels`."""
    return record_procedure(patient=patient, levels=levels or [{"level": "L1"}], **procedure_fields(**fields))


# --- Many rows at once --------------------------------------------------------------------------


def patient_row(*, clinic: Clinic, number: int, **fields) -> Patient:
    """An unsaved patient with the fields `make_patient` would register, for `bulk_create`."""
    return Patient(**patient_fields(clinic=clinic, number=number, **fields))


def procedure_row(*, patient: Patient, **fields) -> Procedure:
    """An unsaved procedure with the fields `make_procedure` would record, for `bulk_create`."""
    return Procedure(patient=patient, **procedure_fields(**fields))


def bulk_patients(*, clinic: Clinic, count: int, first: int | None = None, mrn_prefix: str = "BULK", **fields):
    """`count` patients of `clinic`, numbered from `first` (default: after every patient there is)."""
    first = Patient.objects.count() if first is None else first
    rows = (
        patient_row(clinic=clinic, number=n, mrn=f"{mrn_prefix}{n:06d}", **fields) for n in range(first, first + count)
    )
    return Patient.objects.bulk_create(rows, batch_size=BATCH)


def bulk_procedures(*, patients, levels=("L1",), **fields) -> list[Procedure]:
    """One procedure, treated at `levels`, for each of `patients` (a patient listed n times gets n), neither
    assessed nor planned."""
    procedures = Procedure.objects.bulk_create(
        [procedure_row(patient=patient, **fields) for patient in patients], batch_size=BATCH
    )
    TreatedLevel.objects.bulk_create(
        [TreatedLevel(procedure=procedure, level=level) for procedure in procedures for level in levels],
        batch_size=BATCH,
    )
    return procedures


def bulk_checkpoints(*, procedures, code: str = "CP-05", state: str = "due") -> list[Checkpoint]:
    """One coordinator task per procedure, its window open today."""
    now = timezone.now()
    return Checkpoint.objects.bulk_create(
        [
            Checkpoint(
                procedure=procedure,
                code=code,
                title="Fracture-risk and falls assessment",
                audience="coordinator_task",
                source="E8",
                protocol_version="2026.1",
                window_start=now.date(),
                target_date=now.date(),
                window_end=now.date(),
                opens_at=now,
                due_at=now,
                closes_at=now,
                state=state,
            )
            for procedure in procedures
        ],
        batch_size=BATCH,
    )


def bulk_alerts(*, procedures, code: str = "RF-01", tier: str = "emergency", state: str = "open") -> list[Alert]:
    """One API symptom report with red flag `code` per procedure, and the alert it raised, now in `state`
    (one patient has at most one open alert per code: give a patient's other procedures resolved ones)."""
    now = timezone.now()
    reports = SymptomReport.objects.bulk_create(
        [
            SymptomReport(
                patient=p.patient,
                procedure=p,
                source="api",
                day=5,
                pain_now=7,
                red_flags=[code],
                protocol_version="2026.1",
            )
            for p in procedures
        ],
        batch_size=BATCH,
    )
    return Alert.objects.bulk_create(
        [
            Alert(
                patient=r.patient,
                procedure=r.procedure,
                clinic_id=r.patient.clinic_id,
                code=code,
                tier=tier,
                state=state,
                protocol_version="2026.1",
                rule_source="S0",
                action="Assess",
                first_report=r,
                last_report=r,
                first_seen_at=now,
                last_seen_at=now,
                policy=[{"after_minutes": 0, "notify": "coordinators"}],
                policy_started_at=now,
            )
            for r in reports
        ],
        batch_size=BATCH,
    )


# --- API clients --------------------------------------------------------------------------------


def make_api_token(*, clinics, scopes=("read", "write"), name: str = "EHR") -> str:
    """The raw bearer token of a new API client of `clinics` (the only time it can be read)."""
    _, raw = create_api_client(name=name, clinics=list(clinics), scopes=list(scopes))
    return raw


def bearer_client(*, token: str | None) -> APIClient:
    """An APIClient that sends `Authorization: Bearer <token>` (None: no header)."""
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- Check-ins ----------------------------------------------------------------------------------

# 09:00 in London (GMT, before the clocks go forward): CP-01 of a procedure done the day before is
# due now, and it is outside the clinic's quiet hours (20:00–08:00).
PERFORMED_ON = date(2026, 3, 9)
CHECKIN_DUE = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

LINK = re.compile(r"https?://\S+?/c/[A-Za-z0-9_-]+/")


def link_path(body: str, pattern: re.Pattern = LINK) -> str:
    """The path of the one link in an e-mail body that matches `pattern`."""
    [link] = pattern.findall(body)
    return urlparse(link).path


def form_answers(**overrides) -> dict[str, str]:
    """A complete check-in form: every red flag "no", concerns heard, no other procedure advised."""
    answers = {
        "pain_now": "3",
        "pain_average_24h": "3",
        "painkillers": "non_opioid",
        "fell_since_last": "no",
        "missed_medication_doses": "na",
        "medication_side_effects": "na",
        "wearing_brace": "na",
        "doing_physio": "yes",
        "other_symptoms": "",
        **{f"RF-{n:02d}": "no" for n in range(1, 11)},
        "SO-2": "yes",
        "SO-4": "no",
    }
    answers.update(overrides)
    return {key: value for key, value in answers.items() if value is not None}


@dataclass
class Invitation:
    checkin: CheckIn
    path: str  # /c/<token>/
    message: mail.EmailMessage


def plan_checkin(*, procedure: Procedure) -> CheckIn:
    """The check-in the reminder sweep makes of `procedure`'s CP-01 (done on PERFORMED_ON, so due at
    CHECKIN_DUE)."""
    checkpoint = Checkpoint.objects.get(procedure=procedure, code="CP-01")
    assert checkpoint.next_reminder_at == CHECKIN_DUE
    sweep_reminders(now=checkpoint.next_reminder_at)
    return CheckIn.objects.get(checkpoint=checkpoint)


def send_invitation(*, checkin: CheckIn) -> Invitation:
    """Sweep and send `checkin`'s invitation e-mail (Django's test outbox); the link is read from it."""
    sweep_checkins(now=CHECKIN_DUE)
    delivery = Delivery.objects.get(checkin=checkin, kind=DeliveryKind.CHECKIN)
    deliver(delivery_id=delivery.pk)
    message = mail.outbox[-1]
    assert message.to == [checkin.patient.email]
    checkin.refresh_from_db()
    return Invitation(checkin=checkin, path=link_path(message.body), message=message)


# --- Table snapshots (a write of any kind shows) ---------------------------------------------

API_BASE = "/api/v1"


def snapshot() -> dict[str, list]:
    """Every row of the registry and alerting tables with its last change, so that a write of any kind shows."""
    skipped = {"patients.ApiClient", "alerts.WorkerHeartbeat"}  # a client's last_used_at records the call itself
    rows = {}
    for model in [*apps.get_app_config("patients").get_models(), *apps.get_app_config("alerts").get_models()]:
        if model._meta.label in skipped:
            continue
        fields = ["pk", "updated_at"] if any(f.name == "updated_at" for f in model._meta.fields) else ["pk"]
        rows[model._meta.label] = sorted(model.objects.values_list(*fields))
    return rows


def changed_tables(before: dict, after: dict) -> list[str]:
    return [label for label in before if before[label] != after[label]]
