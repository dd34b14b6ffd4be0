"""Benchmark: planning the schedules of 10,000 procedures, against a raw-SQL COPY of the same rows.

Set-up (not timed): a throw-away database with one Europe/London clinic and 10,000 (+100 warm-up)
patients, each with one recorded procedure and its treated levels, varied so that every risk tier
and every conditional checkpoint occurs. No procedure has a schedule yet.

Timed: `patients.services.schedule_procedures(procedure_ids=…)` over the 10,000 procedures, 1,000 per
call (one transaction each), which is how an import plans what it records: it fixes the
protocol version, assesses the risk and plans, writing the RiskAssessment and Checkpoint rows.
The 100 warm-up procedures are planned first, untimed.

Floor: the Checkpoint rows that run wrote are read back, the table is emptied (TRUNCATE), and the
same rows are written again with one COPY in one transaction; best of 3 after one warm-up COPY.

Prints BENCH schedule_generation_ratio (target <= 3), the two times and some context.
"""

import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Stopwatch, bench, bench_database, note, raw_connection, setup_django, write_artifact  # noqa: E402

PROCEDURES = 10_000
WARMUP = 100
COPY_RUNS = 3


def make_procedures(clinic, count: int, offset: int) -> list[int]:
    """`count` patients of `clinic` with one unplanned procedure each; returns the procedure ids."""
    from patients.models import VERTEBRAE, Patient, Procedure, TreatedLevel
    from tests.builders import patient_row, procedure_row

    today = date.today()
    patients = []
    for n in range(offset, offset + count):
        on_med = n % 4 == 0
        patients.append(
            patient_row(
                clinic=clinic,
                number=n,
                mrn=f"B{n:07d}",
                birth_date=today.replace(year=today.year - (62 + n % 30)) - timedelta(days=n % 300),
                email_consent=n % 10 != 0,
                bmd_lowest_t_score=None if n % 6 == 0 else -1.0 - (n % 30) / 10,
                dxa_date=None if n % 6 == 0 else today - timedelta(days=100 + 7 * (n % 150)),
                on_osteoporosis_med=on_med if n % 5 else None,
                osteoporosis_drug="alendronate" if on_med else "",
                osteoporosis_med_started_on=today - timedelta(days=n % 60) if on_med else None,
            )
        )
    patients = Patient.objects.bulk_create(patients, batch_size=2000)
    procedures = []
    for n, patient in enumerate(patients, start=offset):
        performed = today - timedelta(days=n % 20)
        procedures.append(
            procedure_row(
                patient=patient,
                kind="kyphoplasty" if n % 2 else "vertebroplasty",
                performed_on=performed,
                fracture_diagnosed_on=None if n % 9 == 0 else performed - timedelta(days=n % 30),
                posterior_fascia_oedema=[True, False, None][n % 3],
                facet_joint_violation=n % 11 == 0,
                new_fracture_diagnosed_on=performed if n % 97 == 0 else None,
                brace_prescribed=n % 5 == 0,
                brace_type="TLSO" if n % 5 == 0 else "",
                brace_planned_weeks=8 if n % 5 == 0 else None,
            )
        )
    procedures = Procedure.objects.bulk_create(procedures, batch_size=2000)
    levels = []
    for n, procedure in enumerate(procedures, start=offset):
        for k in range(1 + n % 2):
            levels.append(
                TreatedLevel(
                    procedure=procedure,
                    level=VERTEBRAE[(n + 3 * k) % len(VERTEBRAE)],
                    cement_leakage=n % 3 == 0,
                    leak_site="venous" if n % 3 == 0 else "",
                    cement_distribution="separated" if n % 7 == 0 else "confluent",
                    intravertebral_cleft=n % 8 == 0,
                    hounsfield_units=None if n % 4 == 1 else 40 + (n * 37) % 200,
                )
            )
    TreatedLevel.objects.bulk_create(levels, batch_size=5000)
    return [procedure.pk for procedure in procedures]


def make_population() -> tuple[list[int], list[int]]:
    """The bench clinic with WARMUP + PROCEDURES unplanned procedures: (warm-up ids, timed ids)."""
    from tests.builders import make_clinic

    clinic = make_clinic(name="Bench Spine", slug="bench", phone="+44 20 0000 0000", email="spine@bench.invalid")
    return make_procedures(clinic, WARMUP, 0), make_procedures(clinic, PROCEDURES, WARMUP)


def plan_all(ids: list[int]) -> float:
    """Plan the procedures through `schedule_procedures`, the planning path of an import, 1,000 at a time."""
    from patients.services import schedule_procedures

    with Stopwatch() as watch:
        for start in range(0, len(ids), 1000):
            schedule_procedures(procedure_ids=ids[start : start + 1000])
    return watch.seconds


def copy_floor(url: str, ids: list[int]) -> tuple[float, int]:
    """Best time of COPYing the planned rows back into an emptied table; also the row count."""
    with raw_connection(url) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'patients_checkpoint' "
                "AND column_name <> 'id' ORDER BY ordinal_position"
            )
        ]
        column_list = ", ".join(columns)
        rows = conn.execute(
            f"SELECT {column_list} FROM patients_checkpoint WHERE procedure_id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
        conn.commit()
        times = []
        for _ in range(1 + COPY_RUNS):
            conn.execute("TRUNCATE patients_checkpoint CASCADE")
            conn.commit()
            with Stopwatch() as watch:
                with conn.cursor().copy(f"COPY patients_checkpoint ({column_list}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                conn.commit()
            times.append(watch.seconds)
        copied = conn.execute("SELECT count(*) FROM patients_checkpoint").fetchone()[0]
    assert copied == len(rows), (copied, len(rows))
    return min(times[1:]), len(rows)


def main() -> None:
    with bench_database("schedule") as url:
        setup_django()
        from django.db import connection
        from django.db.models import Count
        from django.test.utils import CaptureQueriesContext

        from patients.models import Checkpoint, CheckpointEvent, RiskAssessment

        with Stopwatch() as watch:
            warmup, timed = make_population()
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        note(f"set-up: {WARMUP + PROCEDURES} patients and procedures in {watch.seconds:.1f} s")

        with CaptureQueriesContext(connection) as queries:
            plan_all(warmup)
        note(f"warm-up: {len(queries) / WARMUP:.1f} SQL statements per planned procedure")
        # Statistics as a live database has them (this server runs with autovacuum off): without
        # this, the deferred FK checks of CheckpointEvent -> Checkpoint keep the sequential-scan plan
        # they were first given on the empty table, and planning slows to ~0.5 s per procedure.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        connection.close()

        seconds = plan_all(timed)
        rows = Checkpoint.objects.filter(procedure_id__in=timed).count()
        events = CheckpointEvent.objects.filter(checkpoint__procedure_id__in=timed).count()
        tiers = dict(
            RiskAssessment.objects.filter(procedure_id__in=timed, is_current=True)
            .values_list("tier")
            .annotate(n=Count("id"))
        )
        note(f"planned {PROCEDURES} procedures: {rows} checkpoints, {events} events, tiers {tiers}")
        assert rows > PROCEDURES

        from django.db import connections

        connections.close_all()
        raw_seconds, copied = copy_floor(url, timed)
        assert copied == rows

        bench("schedule_generation_ratio", seconds / raw_seconds, "ratio")
        bench("schedule_generation_seconds", seconds, "s")
        bench("schedule_generation_raw_sql_seconds", raw_seconds, "s")
        bench("schedule_generation_checkpoint_rows", rows, "rows")
        bench("schedule_generation_ms_per_procedure", 1000 * seconds / PROCEDURES, "ms")
        write_artifact("bench_schedule.txt")


if __name__ == "__main__":
    main()
