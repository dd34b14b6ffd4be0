"""The coordinators' daily digest: once per clinic and local date, after the clinic's digest time, a
count of newly missed checkpoints and due coordinator tasks, with a link to the worklist."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction

from patients.models import Audience, Checkpoint, CheckpointEvent, CheckpointState, Clinic, StaffRole

from .models import Delivery, DeliveryKind, DigestRun
from .outbox import enqueue_deliveries


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
    """A DigestRun (unique per clinic and local date) and one Delivery per coordinator, enqueued on
    commit; nothing if another sweeper wrote them first. Returns the number of deliveries written."""
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
