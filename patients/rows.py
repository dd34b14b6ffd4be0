"""The two ways a row changes state when several writers may race: a conditional UPDATE that moves
rows from known states to a new one, and batches claimed with SELECT … FOR UPDATE SKIP LOCKED.

Both apps use them for every state column (checkpoints, alerts, deliveries, check-ins, reviews), so
"another writer got there first" is handled the same way everywhere: the loser changes nothing.

And the one way many new rows are written at once: `copy_rows`, with ids drawn first by `new_ids`
when other rows must point at them.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from operator import itemgetter
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone


def transition(queryset: models.QuerySet, from_states: str | Iterable[str], to: str, **fields: Any) -> int:
    """Move the rows of `queryset` that are still in one of `from_states` to `to` (setting `fields`
    too) in one conditional UPDATE, and return how many moved. A row another writer has already
    moved is left alone, so a caller that gets 0 lost the race and must not act on the row.

    `updated_at` is stamped when the model has it and the caller did not set it.
    """
    states = [from_states] if isinstance(from_states, str) else list(from_states)
    if "updated_at" not in fields and any(f.name == "updated_at" for f in queryset.model._meta.concrete_fields):
        fields["updated_at"] = timezone.now()
    return queryset.filter(state__in=states).update(state=to, **fields)


def claimed_batches(queryset: models.QuerySet, size: int, *, of: tuple[str, ...] = ("self",)) -> Iterator[list]:
    """Yield the rows of `queryset` in batches of at most `size`, each batch locked with SKIP LOCKED
    in a transaction of its own, until none are left.

    The loop body runs inside that transaction: its writes commit with the claim when the loop asks
    for the next batch, and an exception in the body rolls the batch back (rows stay unclaimed for
    the next sweep). A row locked by a concurrent sweeper is skipped, never processed twice. The body
    must move every row it is given out of `queryset`'s filter (or the same rows come back next
    time), and must not `break` (closing the generator early rolls back the current batch). Call it
    outside any transaction: inside one, the batches are savepoints and commit only with it.

    The rollback happens when the generator is closed. Iterated in the `for` statement itself, it is
    closed as soon as an exception leaves the loop; kept in a variable, it lives as long as the
    traceback does, and so do the batch's transaction and row locks (an `except` block that writes
    would write into that doomed batch). Wrap a kept generator in `contextlib.closing`.

    `of` names the tables to lock when `queryset` joins others (PostgreSQL cannot lock the nullable
    side of an outer join); values_list() querysets work too.
    """
    while True:
        with transaction.atomic():
            batch = list(queryset.select_for_update(skip_locked=True, of=of)[:size])
            if not batch:
                return
            yield batch


def new_ids(model: type[models.Model], count: int) -> list[int]:
    """`count` fresh primary keys from the table's own sequence, for rows written with `copy_rows`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(nextval(pg_get_serial_sequence(%s, %s))) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return cursor.fetchone()[0] or []


def copy_rows(model: type[models.Model], rows: Iterable[Mapping[str, Any]], *, with_pk: bool = False) -> None:
    """Write new rows, each given as field values by attname, with one COPY. A field a row leaves
    out takes its default; `auto_now`/`auto_now_add` fields take the moment of the call. No model
    code runs (no `save()`, no signals, no history record): the values must be valid already.

    Dates and times are sent as ISO text, each distinct value formatted once: psycopg's own
    adaptation of them costs several times the rest of the row, and planned rows share few values.
    """
    now = timezone.now()
    fields = [field for field in model._meta.concrete_fields if with_pk or not field.primary_key]
    defaults = {field.attname: field.get_default() for field in fields}
    defaults.update(
        {f.attname: now for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)}
    )
    json_names = {field.attname for field in fields if isinstance(field, models.JSONField)}
    defaults.update({name: json.dumps(defaults[name]) for name in json_names})
    moments = [index for index, field in enumerate(fields) if isinstance(field, models.DateField)]
    values_of = itemgetter(*(field.attname for field in fields))
    iso: dict[date, str] = {}
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            if json_names:
                row = {**row, **{name: json.dumps(row[name]) for name in json_names & row.keys()}}
            values = list(values_of(defaults | row))
            for index in moments:
                value = values[index]
                if value is not None:
                    values[index] = iso.get(value) or iso.setdefault(value, value.isoformat())
            copy.write_row(values)
