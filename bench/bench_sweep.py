"""Benchmark: the reminder sweep, 10,000 due among 100,000 and 1,000,000 stored checkpoints.

Data (raw SQL, not timed): one Europe/London clinic (quiet hours 20:00-08:00, reminders at the
protocol's 09:00); one active, consenting patient with an e-mail address per procedure; ten
checkpoints per procedure. Exactly 10,000 rows, spread evenly through the table, are due at NOW
(10:00 UTC = 10:00 in London, outside quiet hours): scheduled, first reminder at 09:00 London on
their target day. Of the rest, 60 % are completed (no reminder) and 40 % scheduled with their
reminder in the future. ANALYZE after loading.

Timed, each run in a fresh subprocess after restoring the 10,000 rows (and emptying the outbox and
the event table, then VACUUM ANALYZE), best of 3:
  - `alerts.reminders.sweep_reminders(now=NOW)`, enqueuing to the REDIS_URL broker (a queue of its
    own, checked to hold 100 tasks and then purged); peak RSS of the sweep = ru_maxrss after the
    sweep minus RSS before it, with the kernel's high-water mark reset just before the sweep.
  - the raw-SQL floor on the same data: one UPDATE ... RETURNING of the due rows and one
    INSERT ... SELECT of their outbox rows, in one transaction.

Prints sweep_ratio (target <= 3), sweep_growth_ratio (target <= 1.3), peak RSS in MB at both sizes
and the raw times.
"""

import json
import os
import resource
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Stopwatch,
    bench,
    bench_database,
    insert_select,
    note,
    purge_queue,
    queue_length,
    raw_connection,
    setup_django,
    write_artifact,
)

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
DUE = 10_000
PER_PROCEDURE = 10
RUNS = 3
SIZES = {"100k": 100_000, "1m": 1_000_000}


# --- Data ---------------------------------------------------------------------------------------

# Codes whose reminder is an e-mail (not a check-in invitation) in protocol 2026.1.
REMINDER_CODES = ["CP-04", "CP-05", "CP-06", "CP-07", "CP-08", "CP-09", "CP-12", "CP-13", "CP-14", "CP-15"]
assert len(REMINDER_CODES) == PER_PROCEDURE

# i = 1..total is the row's position; every (total / DUE)-th row is due. `t` is the target day.
CHECKPOINT_SOURCE = f"""
FROM (
    SELECT procedure_id, k, kind,
        CASE kind WHEN 'due' THEN date '2026-03-10' - (i %% 5)
                  WHEN 'future' THEN date '2026-03-11' + (i %% 300)
                  ELSE date '2026-03-09' - (i %% 300) END AS t
    FROM (
        SELECT procedure_id, k, i,
            CASE WHEN i %% %(every)s = 0 THEN 'due' WHEN i %% 5 < 3 THEN 'completed' ELSE 'future' END AS kind
        FROM (
            SELECT p.id AS procedure_id, k, ((p.rn - 1) * {PER_PROCEDURE} + k)::int AS i
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM patients_procedure) p
            CROSS JOIN generate_series(1, {PER_PROCEDURE}) k
        ) r
    ) q
) d
"""
CHECKPOINT_VALUES = {
    "procedure_id": "procedure_id",
    "code": "(%(codes)s::text[])[k]",
    "sequence": "1",
    "title": "'Checkpoint ' || k",
    "audience": "'patient_reminder'",
    "source": "'[DESIGN]'",
    "protocol_version": "'2026.1'",
    "window_start": "t - 7",
    "target_date": "t",
    "window_end": "t + 28",
    "opens_at": "(t - 7)::timestamp AT TIME ZONE 'Europe/London'",
    "due_at": "(t + time '09:00') AT TIME ZONE 'Europe/London'",
    "closes_at": "(t + 29)::timestamp AT TIME ZONE 'Europe/London'",
    "state": "CASE kind WHEN 'completed' THEN 'completed' ELSE 'scheduled' END",
    "reminder_every_days": "7",
    "reminder_max": "3",
    "reminders_sent": "CASE kind WHEN 'completed' THEN 1 ELSE 0 END",
    "next_reminder_at": "CASE kind WHEN 'completed' THEN NULL ELSE (t + time '09:00') AT TIME ZONE 'Europe/London' END",
    "completed_at": "CASE kind WHEN 'completed' THEN (t + time '11:00') AT TIME ZONE 'Europe/London' END",
    "created_at": "%(now)s - interval '30 days'",
    "updated_at": "%(now)s - interval '30 days'",
}

DUE_FILTER = (
    "state IN ('scheduled', 'due') AND next_reminder_at IS NOT NULL AND next_reminder_at <= %(now)s "
    "AND closes_at > %(now)s"
)


def load(url: str, total: int) -> None:
    """Empty the tables and load `total` checkpoints of which DUE are due at NOW."""
    procedures = total // PER_PROCEDURE
    with raw_connection(url) as conn:
        conn.execute(
            "TRUNCATE patients_clinic, patients_patient, patients_procedure, patients_checkpoint, "
            "patients_checkpointevent, patients_riskassessment, alerts_delivery RESTART IDENTITY CASCADE"
        )
        conn.execute("DROP TABLE IF EXISTS bench_due")
        clinic = insert_select(
            conn,
            "patients_clinic",
            {
                "name": "'Bench Spine'",
                "slug": "'bench'",
                "time_zone": "'Europe/London'",
                "phone": "'+44 20 0000 0000'",
                "email": "'spine@bench.invalid'",
                "protocol_version": "'2026.1'",
                "quiet_hours_start": "time '20:00'",
                "quiet_hours_end": "time '08:00'",
                "digest_time": "time '07:30'",
                "working_days": "ARRAY[0, 1, 2, 3, 4]",
                "opens_at": "time '09:00'",
                "closes_at": "time '17:00'",
                "emergency_number": "'999'",
                "created_at": "%(now)s",
                "updated_at": "%(now)s",
            },
            "RETURNING id",
            {"now": NOW},
        ).fetchone()[0]
        insert_select(
            conn,
            "patients_patient",
            {
                "mrn": "'S' || g",
                "given_name": "'Given'",
                "family_name": "'Family'",
                "birth_date": "date '1945-01-01' + g %% 7000",
                "sex": "'unknown'",
                "email": "'patient' || g || '@example.invalid'",
                "language": "'en'",
                "time_zone": "'Europe/London'",
                "email_consent": "true",
                "status": "'active'",
                "created_at": "%(now)s",
                "updated_at": "%(now)s",
                "clinic_id": "%(clinic)s",
            },
            "FROM generate_series(1, %(n)s) g",
            {"now": NOW, "clinic": clinic, "n": procedures},
        )
        insert_select(
            conn,
            "patients_procedure",
            {
                "kind": "'kyphoplasty'",
                "performed_on": "date '2026-01-05'",
                "fracture_diagnosed_on": "date '2025-12-20'",
                "protocol_version": "'2026.1'",
                "created_at": "%(now)s",
                "updated_at": "%(now)s",
                "patient_id": "id",
            },
            "FROM patients_patient ORDER BY id",
            {"now": NOW},
        )
        insert_select(
            conn,
            "patients_checkpoint",
            CHECKPOINT_VALUES,
            CHECKPOINT_SOURCE,
            {"now": NOW, "every": total // DUE, "codes": REMINDER_CODES},
        )
        conn.execute(
            "CREATE TABLE bench_due AS SELECT id, state, reminders_sent, next_reminder_at, reminder_blocked, "
            f"updated_at FROM patients_checkpoint WHERE {DUE_FILTER}",
            {"now": NOW},
        )
        conn.commit()
        count = conn.execute("SELECT count(*) FROM bench_due").fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM patients_checkpoint").fetchone()[0]
        assert (count, stored) == (DUE, total), (count, stored)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def restore(url: str) -> None:
    """Put the due rows back as they were loaded; empty the outbox and the event table."""
    with raw_connection(url) as conn:
        conn.execute(
            "UPDATE patients_checkpoint c SET state = b.state, reminders_sent = b.reminders_sent, "
            "next_reminder_at = b.next_reminder_at, reminder_blocked = b.reminder_blocked, updated_at = b.updated_at "
            "FROM bench_due b WHERE c.id = b.id"
        )
        conn.execute("TRUNCATE alerts_delivery, patients_checkpointevent")
        conn.commit()
        due = conn.execute(f"SELECT count(*) FROM patients_checkpoint WHERE {DUE_FILTER}", {"now": NOW}).fetchone()[0]
        assert due == DUE, due
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE patients_checkpoint, alerts_delivery, patients_checkpointevent")


# --- Children: one measurement each, in a fresh process -----------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset the high-water RSS mark to the current RSS
    except OSError:
        pass


def child_sweep() -> dict:
    setup_django()
    import gc

    from django.db import connection

    import alerts.tasks  # noqa: F401 - loaded, as in the worker whose sweep task runs the sweep
    from alerts.reminders import sweep_reminders
    from kyphofollow.celery import app

    connection.ensure_connection()
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()
    queued_before = queue_length()
    gc.collect()
    rss_before = _rss_bytes()
    _reset_peak_rss()
    cpu = time.process_time()
    with Stopwatch() as watch:
        written = sweep_reminders(now=NOW)
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queued = queue_length() - queued_before
    purge_queue()
    return {
        "seconds": watch.seconds,
        "python_cpu_seconds": cpu,
        "written": written,
        "queued": queued,
        "peak_mb": (peak - rss_before) / 2**20,
    }


RAW_UPDATE = f"""
UPDATE patients_checkpoint c
SET reminders_sent = c.reminders_sent + 1,
    next_reminder_at = CASE
        WHEN c.reminders_sent + 1 >= c.reminder_max THEN NULL
        WHEN ((((%(now)s AT TIME ZONE pt.time_zone)::date + c.reminder_every_days)
               + coalesce(cl.reminder_time, time '09:00')) AT TIME ZONE pt.time_zone) < c.closes_at
            THEN (((%(now)s AT TIME ZONE pt.time_zone)::date + c.reminder_every_days)
                  + coalesce(cl.reminder_time, time '09:00')) AT TIME ZONE pt.time_zone
        END,
    state = 'due',
    updated_at = %(now)s
FROM patients_procedure p
JOIN patients_patient pt ON pt.id = p.patient_id
JOIN patients_clinic cl ON cl.id = pt.clinic_id
WHERE p.id = c.procedure_id
  AND pt.status = 'active' AND pt.email_consent AND pt.email <> ''
  AND c.id IN (SELECT id FROM patients_checkpoint WHERE {DUE_FILTER} ORDER BY next_reminder_at FOR UPDATE SKIP LOCKED)
RETURNING c.id, c.reminders_sent, pt.email, pt.clinic_id, pt.id
"""

RAW_INSERT = """
INSERT INTO alerts_delivery (kind, channel, cause, recipient, context, state, attempts, next_attempt_at,
    last_error, created_at, updated_at, checkpoint_id, clinic_id, patient_id)
SELECT 'reminder', 'email', 'reminder:' || t.id || ':' || t.n, t.email, '{}', 'pending', 0, %(now)s,
    '', %(now)s, %(now)s, t.id, t.clinic, t.patient
FROM unnest(%(ids)s::bigint[], %(ns)s::int[], %(emails)s::text[], %(clinics)s::bigint[], %(patients)s::bigint[])
    AS t(id, n, email, clinic, patient)
ON CONFLICT DO NOTHING
RETURNING id
"""


def child_raw() -> dict:
    url = os.environ["DATABASE_URL"]
    with raw_connection(url) as conn:
        conn.execute("SELECT 1").fetchone()
        conn.commit()
        with Stopwatch() as watch:
            rows = conn.execute(RAW_UPDATE, {"now": NOW}).fetchall()
            ids, ns, emails, clinics, patients = (list(column) for column in zip(*rows, strict=True))
            written = len(
                conn.execute(
                    RAW_INSERT,
                    {"now": NOW, "ids": ids, "ns": ns, "emails": emails, "clinics": clinics, "patients": patients},
                ).fetchall()
            )
            conn.commit()
    return {"seconds": watch.seconds, "written": written}


def run_child(kind: str, url: str) -> dict:
    env = dict(os.environ, DATABASE_URL=url)
    out = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{kind} child failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(url: str, kind: str) -> dict:
    restore(url)
    result = run_child(kind, url)
    assert result["written"] == DUE, result
    if kind == "sweep":
        assert result["queued"] == DUE // 100, result
    return result


def main() -> None:
    results: dict[str, dict[str, list[dict]]] = {label: {"sweep": [], "raw": []} for label in SIZES}
    with ExitStack() as stack:
        urls = {}
        for label, total in SIZES.items():
            urls[label] = stack.enter_context(bench_database(f"sweep_{label}"))
            with Stopwatch() as watch:
                load(urls[label], total)
            note(f"loaded {total} checkpoints ({DUE} due) in {watch.seconds:.1f} s")
        # Interleaved, so that a load change on a shared machine hits both sizes and both paths alike.
        for _ in range(RUNS):
            for label in SIZES:
                for kind in ("sweep", "raw"):
                    results[label][kind].append(measure(urls[label], kind))
        for label in SIZES:
            note(f"{label}: " + json.dumps(results[label]))
        note(f"load average at the end: {os.getloadavg()}")

    def best(label: str, kind: str) -> float:
        return min(run["seconds"] for run in results[label][kind])

    def peak(label: str) -> float:
        return max(run["peak_mb"] for run in results[label]["sweep"])

    bench("sweep_ratio", best("1m", "sweep") / best("1m", "raw"), "ratio")
    bench("sweep_growth_ratio", best("1m", "sweep") / best("100k", "sweep"), "ratio")
    bench("sweep_peak_rss_mb_100k", peak("100k"), "MB")
    bench("sweep_peak_rss_mb_1m", peak("1m"), "MB")
    bench("sweep_seconds_1m", best("1m", "sweep"), "s")
    bench("sweep_seconds_100k", best("100k", "sweep"), "s")
    bench("sweep_raw_sql_seconds_1m", best("1m", "raw"), "s")
    bench("sweep_raw_sql_seconds_100k", best("100k", "raw"), "s")
    write_artifact("bench_sweep.txt")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps({"sweep": child_sweep, "raw": child_raw}[sys.argv[2]]()))
    else:
        main()
