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
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

from django.db import connection
from django.utils import timezone

from patients.protocol import get_protocol

from .message_cap import UNCAPPED
from .models import DeliveryState
from .outbox import enqueue_deliveries

DAY = "day:"
LISTS = ("items",)


@dataclass(slots=True)
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
    INSERT INTO alerts_delivery (kind, channel, cause, recipient, clinic_id, checkpoint_id, checkin_id, patient_id,
        context, state, attempts, next_attempt_at, last_error, created_at, updated_at)
    SELECT t.kind, 'email', t.cause, t.recipient, t.clinic, t.checkpoint, t.checkin, t.patient, t.context::jsonb,
        '{DeliveryState.PENDING}', 0, %s::timestamptz + t.wait * interval '1 second', '', %s, %s
      FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
                  %s::text[], %s::int[])
        AS t(kind, cause, recipient, clinic, checkpoint, checkin, patient, context, wait)
    ON CONFLICT (cause, channel, recipient) DO UPDATE SET
        context = CASE WHEN {JOINABLE}
            THEN alerts_delivery.context || jsonb_build_object({", ".join(_merge(key) for key in LISTS)})
            ELSE alerts_delivery.context END,
        updated_at = CASE WHEN {JOINABLE} THEN EXCLUDED.updated_at ELSE alerts_delivery.updated_at END
    RETURNING id, cause, xmax = 0, CASE WHEN xmax = 0 THEN NULL ELSE context->'items' END
"""  # noqa: S608 (built from constants only)


def write_items(items: list[Item], *, now: datetime) -> set[str]:
    """Write `items`: each safety item in a row of its own, sent at once; the others into their
    patient's row of the day, new (waiting `gather_minutes`) or not yet sent. Enqueues the new rows
    on commit (a waiting one for its moment) and returns the causes of the items placed, now or
    before; an item not returned found its day's e-mail gone."""
    if not items:
        return set()
    rows = _rows(items)
    columns = list(zip(*(row for row, _causes in rows.values()), strict=True))
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [now, now, now, *map(list, columns)])
        written = cursor.fetchall()
    placed, later = set(), defaultdict(list)
    ahead = (now - timezone.now()).total_seconds()  # a sweep for a past moment sends at once
    for pk, cause, inserted, causes in written:
        if inserted:  # a new row: its items are ours
            row, ours = rows[cause]
            placed.update(ours)
            later[max(0, math.ceil(ahead + row[-1]))].append(pk)
        else:  # an existing row: what it holds now
            placed.update(json.loads(causes) if isinstance(causes, str) else causes or ())
    for countdown, ids in later.items():
        enqueue_deliveries(ids, countdown=countdown)
    return placed


@cache
def _gather_seconds(protocol_version: str) -> int:
    return 60 * get_protocol(protocol_version).patient_messages.gather_minutes


def _rows(items: list[Item]) -> dict[str, tuple[tuple, list[str]]]:
    """One row per safety item, one per patient, day and address for the others (a batch writes a
    conflicting key once: ON CONFLICT cannot touch a row twice in one statement), by cause; each
    row ends with its wait in seconds; with the row, its items' causes."""
    groups: dict[tuple, list[Item]] = defaultdict(list)
    for item in items:
        key = (item.cause,) if item.uncapped else (day_cause(item.patient, item.day), item.recipient)
        groups[key].append(item)
    rows = {}
    for key, members in groups.items():
        first = members[0]
        context = {"items": [item.cause for item in members]}
        if first.uncapped:
            context[UNCAPPED] = True
        wait = 0 if first.uncapped else _gather_seconds(first.protocol_version)
        row = (
            first.kind,
            key[0],
            first.recipient,
            first.clinic,
            next((item.checkpoint for item in members if item.checkpoint), None),
            next((item.checkin for item in members if item.checkin), None),
            first.patient,
            json.dumps(context),
            wait,
        )
        rows[key[0]] = (row, context["items"])
    return rows
