"""A patient's day in one e-mail: the non-safety reminders and check-in invitations due the same
patient-local day are items of one Delivery row, whose cause is `day:<patient>:<local date>` (unique
per recipient, so there is one such row per patient and day). The row waits the protocol's
`gather_minutes` ([patient_messages], [DESIGN]) for the other items of its day, which the reminder
and check-in sweeps add while it is still unsent; an item that comes after its day's e-mail has gone
is not placed, and its sweep moves it to the next day. Safety items (`uncapped`) are rows of their
own, sent at once: never held, never merged.

An item is `reminder:<checkpoint>:<n>` or `checkin:<check-in>:<n>`. A row's items are a set, and an
item found in a row that has already gone counts as placed, so no re-run of a sweep sends an item
twice. One INSERT … ON CONFLICT DO UPDATE writes a whole batch: the reminder sweep's hot path.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection
from django.utils import timezone

from patients.protocol import get_protocol

from .message_cap import UNCAPPED
from .models import DeliveryState
from .outbox import enqueue_deliveries

DAY = "day:"
LISTS = ("items", "checkpoints", "checkins")


@dataclass(frozen=True)
class Item:
    """One reminder or invitation for the day's message (ids only)."""

    cause: str
    kind: str  # DeliveryKind.REMINDER or DeliveryKind.CHECKIN
    patient: int
    day: date  # the patient's local date when it is written
    recipient: str
    clinic: int
    protocol_version: str
    checkpoint: int | None = None
    checkin: int | None = None
    uncapped: bool = False


def day_cause(patient: int, day: date) -> str:
    return f"{DAY}{patient}:{day.isoformat()}"


def _merge(key: str) -> str:
    """`key`'s list in the stored row with the new row's members it lacks appended."""
    old = f"coalesce(alerts_delivery.context->'{key}', '[]'::jsonb)"
    new = f"coalesce(EXCLUDED.context->'{key}', '[]'::jsonb)"
    added = f"(SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements({new}) e WHERE NOT {old} @> e)"  # noqa: S608 (constants only)
    return f"'{key}', {old} || {added}"


# A day's row takes more items only while no attempt has been made to send it.
JOINABLE = f"alerts_delivery.state = '{DeliveryState.PENDING}' AND alerts_delivery.attempts = 0"
JOINABLE += f" AND alerts_delivery.cause LIKE '{DAY}%%'"
INSERT = f"""
    INSERT INTO alerts_delivery (kind, channel, cause, recipient, clinic_id, checkpoint_id, checkin_id, context,
        state, attempts, next_attempt_at, last_error, created_at, updated_at)
    SELECT t.kind, 'email', t.cause, t.recipient, t.clinic, t.checkpoint, t.checkin, t.context::jsonb,
        '{DeliveryState.PENDING}', 0, t.next_at, '', %s, %s
      FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[],
                  %s::timestamptz[])
        AS t(kind, cause, recipient, clinic, checkpoint, checkin, context, next_at)
    ON CONFLICT (cause, channel, recipient) DO UPDATE SET
        context = CASE WHEN {JOINABLE}
            THEN alerts_delivery.context || jsonb_build_object({", ".join(_merge(key) for key in LISTS)})
            ELSE alerts_delivery.context END,
        updated_at = CASE WHEN {JOINABLE} THEN EXCLUDED.updated_at ELSE alerts_delivery.updated_at END
    RETURNING id, context, next_attempt_at, xmax = 0
"""  # noqa: S608 (built from constants only)


def write_items(items: list[Item], *, now: datetime) -> set[str]:
    """Write `items`: each safety item in a row of its own, sent at once; the others into their
    patient's row of the day, new (waiting `gather_minutes`) or not yet sent. Enqueues the new rows
    on commit (a waiting one for its moment) and returns the causes of the items placed, now or
    before; an item not returned found its day's e-mail gone."""
    if not items:
        return set()
    columns = list(zip(*_rows(items, now=now), strict=True))
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [now, now, *map(list, columns)])
        written = cursor.fetchall()
    placed, later = set(), defaultdict(list)
    wall = timezone.now()
    for pk, context, next_at, inserted in written:
        context = json.loads(context) if isinstance(context, str) else context
        placed.update(context.get("items", []))
        if inserted:
            later[max(0, int((next_at - wall).total_seconds()) + 1) if next_at > wall else 0].append(pk)
    for countdown, ids in later.items():
        enqueue_deliveries(ids, countdown=countdown)
    return placed


def _rows(items: list[Item], *, now: datetime) -> list[tuple]:
    """One row per safety item, one per patient, day and address for the others (a batch writes a
    conflicting key once: ON CONFLICT cannot touch a row twice in one statement)."""
    groups: dict[tuple, list[Item]] = defaultdict(list)
    for item in items:
        key = (item.cause,) if item.uncapped else (day_cause(item.patient, item.day), item.recipient)
        groups[key].append(item)
    rows = []
    for key, members in groups.items():
        first = members[0]
        context = {
            "items": [item.cause for item in members],
            "checkpoints": [item.checkpoint for item in members if item.checkpoint],
            "checkins": [item.checkin for item in members if item.checkin],
        }
        if first.uncapped:
            context[UNCAPPED] = True
            next_at = now
        else:
            next_at = now + timedelta(minutes=get_protocol(first.protocol_version).patient_messages.gather_minutes)
        rows.append(
            (
                first.kind,
                key[0],
                first.recipient,
                first.clinic,
                next(iter(context["checkpoints"]), None),
                next(iter(context["checkins"]), None),
                json.dumps(context),
                next_at,
            )
        )
    return rows
