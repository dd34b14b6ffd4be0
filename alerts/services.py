"""Writes for the alerts app: reminders, check-in invitations and digests into the outbox.

Each function says which rows change and what is enqueued.
"""

from collections import defaultdict
from datetime import datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from kyphofollow import audit
from patients.models import Audience, Checkpoint, CheckpointEvent, CheckpointState, Clinic, PatientStatus, StaffRole
from patients.services import local_moment, procedure_protocol, reminder_time

from .models import CheckIn, CheckInState, Delivery, DeliveryKind, DeliveryState, DigestRun, WorkerHeartbeat
from .outbox import enqueue_deliveries
from .rules import get_rules


def record_heartbeat(*, hostname: str) -> WorkerHeartbeat:
    """Upsert this worker's heartbeat row with the current time."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"beat_at": timezone.now()})
    return heartbeat


# --- Reminders ----------------------------------------------------------------------------------


def _in_quiet_hours(clinic: Clinic, local: datetime) -> bool:
    return clinic.in_quiet_hours(local.time())


def _after_quiet_hours(clinic: Clinic, local: datetime, zone: str) -> datetime:
    day = local.date() if local.time() < clinic.quiet_hours_end else local.date() + timedelta(days=1)
    return local_moment(day, clinic.quiet_hours_end, zone)


def _block_reason(checkpoint: Checkpoint) -> str:
    patient = checkpoint.procedure.patient
    if patient.status != PatientStatus.ACTIVE:
        return f"patient {patient.status}"
    if not patient.email_consent:
        return "no e-mail consent"
    if not patient.email:
        return "no e-mail address"
    return ""


def _next_reminder(checkpoint: Checkpoint, local: datetime, at: time, zone: str) -> datetime | None:
    if checkpoint.reminders_sent + 1 >= checkpoint.reminder_max:
        return None
    moment = local_moment(local.date() + timedelta(days=checkpoint.reminder_every_days), at, zone)
    return moment if moment < checkpoint.closes_at else None


# What deciding a reminder reads: loading only these keeps the sweep's cost to the rows it claims.
REMINDER_SWEEP_FIELDS = (
    "id",
    "code",
    "protocol_version",
    "state",
    "reminders_sent",
    "reminder_max",
    "reminder_every_days",
    "closes_at",
    "reminder_blocked",
    "procedure__id",
    "procedure__protocol_version",
    "procedure__patient__id",
    "procedure__patient__status",
    "procedure__patient__email_consent",
    "procedure__patient__email",
    "procedure__patient__time_zone",
    "procedure__patient__clinic__id",
    "procedure__patient__clinic__protocol_version",
    "procedure__patient__clinic__reminder_time",
    "procedure__patient__clinic__quiet_hours_start",
    "procedure__patient__clinic__quiet_hours_end",
)


@cache
def _checkin_codes(version: str) -> frozenset[str]:
    return frozenset(get_rules(version).checkin["checkpoints"])


def _record_first_reminders(checkpoint_ids: list[int], *, now: datetime) -> None:
    """A CheckpointEvent "due" for each checkpoint whose first reminder was just written."""
    events = [
        CheckpointEvent(checkpoint_id=pk, kind=CheckpointEvent.Kind.DUE, at=now, reason="first reminder")
        for pk in checkpoint_ids
    ]
    if connection.vendor != "postgresql":
        CheckpointEvent.objects.bulk_create(events)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO patients_checkpointevent (checkpoint_id, kind, at, reason, data, source, api_client_id)"
            " SELECT t.id, %s, %s, %s, '{}'::jsonb, %s, %s FROM unnest(%s::bigint[]) AS t(id)",
            [
                CheckpointEvent.Kind.DUE,
                now,
                "first reminder",
                audit.current_source(),
                audit.current_client_id(),
                checkpoint_ids,
            ],
        )


def _insert_reminders(rows: list[tuple[str, str, int, int]], *, now: datetime) -> list[int]:
    """Write reminder deliveries (cause, recipient, clinic id, checkpoint id); return the ids of those
    written. A cause already written is skipped (the unique constraint), never doubled. On PostgreSQL
    one INSERT … SELECT FROM unnest … RETURNING, the sweep's hot path; elsewhere `bulk_create`."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        created = Delivery.objects.bulk_create(
            [
                Delivery(
                    kind=DeliveryKind.REMINDER,
                    cause=cause,
                    recipient=recipient,
                    clinic_id=clinic,
                    checkpoint_id=checkpoint,
                    next_attempt_at=now,
                )
                for cause, recipient, clinic, checkpoint in rows
            ],
            ignore_conflicts=True,
        )
        causes = [d.cause for d in created]
        return list(Delivery.objects.filter(cause__in=causes, state=DeliveryState.PENDING).values_list("id", flat=True))
    causes, recipients, clinics, checkpoints = (list(column) for column in zip(*rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO alerts_delivery (kind, channel, cause, recipient, clinic_id, checkpoint_id, context, state,"
            " attempts, next_attempt_at, last_error, created_at, updated_at)"
            " SELECT %s, %s, t.cause, t.recipient, t.clinic, t.checkpoint, '{}'::jsonb, %s, 0, %s, '', %s, %s"
            " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[])"
            " AS t(cause, recipient, clinic, checkpoint)"
            " ON CONFLICT (cause, channel, recipient) DO NOTHING RETURNING id",
            [
                DeliveryKind.REMINDER,
                "email",
                DeliveryState.PENDING,
                now,
                now,
                now,
                causes,
                recipients,
                clinics,
                checkpoints,
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def sweep_reminders(*, now: datetime, batch_size: int = 1000) -> int:
    """Turn open checkpoints whose reminder moment has come into Delivery rows.

    Per batch, in one transaction: claim the rows with SKIP LOCKED, write one Delivery per reminder
    (unique per checkpoint and reminder number), move each row's `next_reminder_at` on by its cadence
    (or defer it past the clinic's quiet hours, or stop it for a patient who cannot be e-mailed), and
    enqueue the new deliveries on commit. Returns the number of deliveries written.
    """
    written = 0
    while True:
        with transaction.atomic():
            rows = list(
                Checkpoint.objects.reminder_due(at=now)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("procedure__patient__clinic")
                .only(*REMINDER_SWEEP_FIELDS)
                .order_by("next_reminder_at")[:batch_size]
            )
            if not rows:
                return written
            deliveries, events, checkins = [], [], []
            changes: dict[tuple, list[int]] = defaultdict(list)  # (next, +1?, blocked, state) → ids
            local_now: dict[str, datetime] = {}
            for row in rows:
                patient = row.procedure.patient
                clinic = patient.clinic
                local = local_now.get(patient.time_zone) or local_now.setdefault(
                    patient.time_zone, now.astimezone(ZoneInfo(patient.time_zone))
                )
                is_checkin = row.code in _checkin_codes(row.protocol_version)
                blocked = _block_reason(row)
                counted = False
                if blocked and not (is_checkin and patient.status == PatientStatus.ACTIVE):
                    row.next_reminder_at, row.reminder_blocked = None, blocked
                elif is_checkin:
                    # A check-in instead of a reminder: the check-in sweep invites (quiet hours
                    # permitting), re-sends once, then makes it a phone-call task, which is also
                    # where a patient who cannot be e-mailed goes at once.
                    checkins.append(
                        CheckIn(
                            patient=patient,
                            procedure=row.procedure,
                            checkpoint=row,
                            reason=row.code,
                            next_action_at=now,
                        )
                    )
                    row.next_reminder_at, row.reminder_blocked, counted = None, blocked, True
                elif _in_quiet_hours(clinic, local):
                    row.next_reminder_at = _after_quiet_hours(clinic, local, patient.time_zone)
                else:
                    deliveries.append((f"reminder:{row.pk}:{row.reminders_sent + 1}", patient.email, clinic.pk, row.pk))
                    at = reminder_time(clinic, procedure_protocol(row.procedure))
                    row.next_reminder_at, counted = _next_reminder(row, local, at, patient.time_zone), True
                if counted and row.state == CheckpointState.SCHEDULED:
                    row.state = CheckpointState.DUE
                    events.append(row.pk)
                changes[(row.next_reminder_at, counted, row.reminder_blocked, row.state)].append(row.pk)
            # Rows share few distinct outcomes (one per cadence and time zone): one UPDATE for each.
            for (next_at, counted, blocked, state), ids in changes.items():
                extra = {"reminders_sent": F("reminders_sent") + 1} if counted else {}
                Checkpoint.objects.filter(id__in=ids).update(
                    next_reminder_at=next_at, reminder_blocked=blocked, state=state, updated_at=now, **extra
                )
            _record_first_reminders(events, now=now)
            CheckIn.objects.bulk_create(checkins, ignore_conflicts=True)
            ids = _insert_reminders(deliveries, now=now)
            enqueue_deliveries(ids)
            written += len(ids) + len(checkins)


# --- Digest -------------------------------------------------------------------------------------


def sweep_digests(*, now: datetime) -> int:
    """Write today's digest for each clinic whose local digest time has passed, once per local date.
    Returns the number of deliveries written."""
    written = 0
    for clinic in Clinic.objects.all():
        local = now.astimezone(ZoneInfo(clinic.time_zone))
        if local.time() < clinic.digest_time:
            continue
        written += _write_digest(clinic=clinic, local_date=local.date(), now=now)
    return written


def _write_digest(*, clinic: Clinic, local_date, now: datetime) -> int:
    previous = DigestRun.objects.filter(clinic=clinic).order_by("-local_date").first()
    since = previous.until if previous else now - timedelta(days=1)
    missed = CheckpointEvent.objects.filter(
        kind=CheckpointEvent.Kind.MISSED,
        at__gt=since,
        at__lte=now,
        checkpoint__procedure__patient__clinic=clinic,
        checkpoint__needs_review=False,  # imported already past: on the worklist, not news
    ).count()
    due_tasks = Checkpoint.objects.filter(
        procedure__patient__clinic=clinic, audience=Audience.COORDINATOR_TASK, state=CheckpointState.DUE
    ).count()
    recipients = list(
        clinic.memberships.filter(role=StaffRole.COORDINATOR, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    try:
        with transaction.atomic():
            DigestRun.objects.create(clinic=clinic, local_date=local_date, since=since, until=now, missed_count=missed)
            created = Delivery.objects.bulk_create(
                Delivery(
                    kind=DeliveryKind.DIGEST,
                    cause=f"digest:{clinic.pk}:{local_date}",
                    recipient=email,
                    clinic=clinic,
                    next_attempt_at=now,
                    context={"missed_count": missed, "due_tasks_count": due_tasks, "local_date": str(local_date)},
                )
                for email in recipients
            )
            enqueue_deliveries([delivery.pk for delivery in created])
    except IntegrityError:
        return 0  # another sweeper wrote this clinic's digest for today first
    return len(created)


# --- Check-ins ----------------------------------------------------------------------------------


def sweep_checkins(*, now: datetime, batch_size: int = 500) -> dict[str, int]:
    """Move unanswered check-ins along: first invitation, one re-send, then a phone-call task.

    Claims invited rows whose `next_action_at` has come (SKIP LOCKED); writes one Delivery per
    invitation (unique per check-in and send number) and enqueues it on commit. Quiet hours defer
    the invitation; a patient who cannot be e-mailed goes straight to a phone-call task.
    """
    counts = {"invited": 0, "call_needed": 0}
    while True:
        with transaction.atomic():
            rows = list(
                CheckIn.objects.filter(state=CheckInState.INVITED, next_action_at__lte=now)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("patient__clinic", "procedure")
                .order_by("next_action_at")[:batch_size]
            )
            if not rows:
                return counts
            deliveries = []
            for row in rows:
                patient, clinic = row.patient, row.patient.clinic
                rules = get_rules(row.procedure.protocol_version or clinic.protocol_version).checkin
                local = now.astimezone(ZoneInfo(patient.time_zone))
                if row.invitations_sent >= 2 or (patient.status == PatientStatus.ACTIVE and not _can_email(patient)):
                    row.state, row.next_action_at = CheckInState.CALL_NEEDED, None
                    counts["call_needed"] += 1
                elif patient.status != PatientStatus.ACTIVE:
                    row.state, row.next_action_at = CheckInState.CANCELLED, None
                elif _in_quiet_hours(clinic, local):
                    row.next_action_at = _after_quiet_hours(clinic, local, patient.time_zone)
                else:
                    row.invitations_sent += 1
                    wait = rules["resend_after_days"] if row.invitations_sent == 1 else rules["call_after_days"]
                    row.next_action_at = now + timedelta(days=wait)
                    deliveries.append(
                        Delivery(
                            kind=DeliveryKind.CHECKIN,
                            cause=f"checkin:{row.pk}:{row.invitations_sent}",
                            recipient=patient.email,
                            clinic=clinic,
                            checkin=row,
                            next_attempt_at=now,
                        )
                    )
                    counts["invited"] += 1
                row.updated_at = now
            CheckIn.objects.bulk_update(rows, ["state", "next_action_at", "invitations_sent", "updated_at"])
            created = Delivery.objects.bulk_create(deliveries)
            enqueue_deliveries([delivery.pk for delivery in created])


def _can_email(patient) -> bool:
    return bool(patient.email_consent and patient.email)


@transaction.atomic
def log_checkin_call(*, checkin: CheckIn, by, note: str) -> CheckIn:
    """Record the coordinator's phone call for a check-in that needed one."""
    from django.core.exceptions import ValidationError

    if not note.strip():
        raise ValidationError({"note": ["Say what was discussed."]})
    changed = CheckIn.objects.filter(pk=checkin.pk, state=CheckInState.CALL_NEEDED).update(
        state=CheckInState.CALLED, call_logged_by=by, call_note=note, updated_at=timezone.now()
    )
    if not changed:
        raise ValidationError({"state": ["This check-in does not need a call."]})
    checkin.refresh_from_db()
    return checkin
