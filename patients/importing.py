"""Onboarding existing patients: one flat CSV or XLSX file (its columns: `import_file.py`) →
patients, procedures, treated levels, schedules.

An MRN already registered in the clinic is accepted only when every patient column present in the
file equals the stored record; the row's procedures are then added to that patient, and a procedure
of the same kind on the same date as one already recorded is refused, so importing a file twice
imports nothing the second time. Any other existing MRN is an error: an import never changes a
registered patient.

`import_rows` validates every row before writing, reports every error as (row, column, message) —
a patient's errors on its first row, a procedure's on its first row — and writes nothing if there
is any. Each procedure is recorded with `services.record_procedure`; then all are assessed and
planned at once (`services.schedule_procedures`); checkpoints whose due moment has already passed
are marked `needs_review` and get no reminder (`services.checkpoints.mark_needs_review`).
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .import_file import (
    COLUMN_NAMES,
    COLUMN_OF_FIELD,
    COLUMNS,
    PATIENT_COLUMNS,
    Errors,
    ParsedRow,
    RowError,
    UnreadableFile,
    blank,
    check_columns,
    parse_row,
    read_rows,
    template_csv,
)
from .models import Checkpoint, Clinic, Patient, Procedure, TreatedLevel
from .services import record_procedure, register_patient, schedule_procedures
from .services.checkpoints import mark_needs_review

# Callers (the admin page, the command, tests) read the file's names from here too.
__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "MAX_PREVIEW_ROWS",
    "NEEDS_REVIEW_REASON",
    "ImportResult",
    "RowError",
    "UnreadableFile",
    "import_rows",
    "read_rows",
    "template_csv",
]

NEEDS_REVIEW_REASON = "imported: already past, review"
MAX_PREVIEW_ROWS = 50


@dataclass
class ImportResult:
    errors: list[RowError] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    dry_run: bool = True

    @property
    def ok(self) -> bool:
        return not self.errors

    def errors_by_row(self) -> dict[int, list[RowError]]:
        by_row: dict[int, list[RowError]] = {}
        for error in self.errors:
            by_row.setdefault(error.row, []).append(error)
        return by_row

    def summary(self) -> str:
        """What the import wrote, in words: "2 new patients, 1 patient already registered, …"."""
        c = self.counts
        return (
            f"{_count(c.get('patients', 0), 'new patient')}, "
            f"{_count(c.get('existing_patients', 0), 'patient')} already registered, "
            f"{_count(c.get('procedures', 0), 'procedure')}, {_count(c.get('levels', 0), 'treated level')} and "
            f"{_count(c.get('checkpoints', 0), 'checkpoint')}, of which {c.get('needs_review', 0)} already past "
            "and to be reviewed"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- Grouping and validation --------------------------------------------------------------------


@dataclass
class _Plan:
    patients: dict[str, list[ParsedRow]] = field(default_factory=dict)
    procedures: dict[str, list[ParsedRow]] = field(default_factory=dict)


def _differing(first: ParsedRow, row: ParsedRow, attribute: str) -> list[str]:
    a, b = getattr(first, attribute), getattr(row, attribute)
    unparsed = first.bad | row.bad
    return [
        name for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name) and COLUMN_OF_FIELD[name] not in unparsed
    ]


def _group(rows: list[ParsedRow], errors: Errors) -> _Plan:
    plan = _Plan()
    for row in rows:
        if not row.mrn or not row.ref:
            continue
        same_patient = plan.patients.setdefault(row.mrn, [])
        if same_patient:
            for name in _differing(same_patient[0], row, "patient"):
                errors.add(row.number, COLUMN_OF_FIELD[name], f"Differs from row {same_patient[0].number} (same mrn).")
        same_patient.append(row)
        same_procedure = plan.procedures.setdefault(row.ref, [])
        if same_procedure:
            first = same_procedure[0]
            if first.mrn != row.mrn:
                errors.add(row.number, "procedure_ref", f"Row {first.number} uses this procedure_ref for another mrn.")
                continue
            for name in _differing(first, row, "procedure"):
                errors.add(row.number, COLUMN_OF_FIELD[name], f"Differs from row {first.number} (same procedure_ref).")
            earlier = next(
                (other for other in same_procedure if other.level.get("level") == row.level.get("level")), None
            )
            if earlier and row.level.get("level"):
                errors.add(
                    row.number,
                    "level",
                    f"{row.level['level']} is already listed for this procedure in row {earlier.number}.",
                )
                continue
        same_procedure.append(row)
    return plan


def _column_on(row: int) -> Callable[[str], tuple[int, str]]:
    return lambda name: (row, COLUMN_OF_FIELD.get(name, name))


def _validate_patient(rows: list[ParsedRow], *, clinic: Clinic, stored: Patient | None, errors: Errors) -> None:
    first = rows[0]
    candidate = Patient(clinic=clinic, **first.patient)
    if stored is None:
        try:
            # The clinic is known to exist; its foreign-key check would cost a query per patient.
            candidate.full_clean(exclude=["clinic"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            errors.add_validation(first.number, exc, field_row=_column_on(first.number))
        return
    for column in PATIENT_COLUMNS:
        name = column.model_field
        if column.name not in first.columns or column.name in first.bad:
            continue
        if getattr(candidate, name) != getattr(stored, name):
            errors.add(
                first.number,
                column.name,
                "This MRN is already registered in the clinic with a different value; an import never changes a "
                "registered patient.",
            )


def _validate_procedure(rows: list[ParsedRow], *, stored_patient: Patient | None, errors: Errors) -> None:
    first = rows[0]
    try:
        Procedure(**first.procedure).full_clean(exclude=["patient"])
    except ValidationError as exc:
        errors.add_validation(first.number, exc, field_row=_column_on(first.number))
    for row in rows:
        try:
            TreatedLevel(**row.level).full_clean(exclude=["procedure"])
        except ValidationError as exc:
            errors.add_validation(row.number, exc, field_row=_column_on(row.number))
    kind, performed_on = first.procedure.get("kind"), first.procedure.get("performed_on")
    if stored_patient and stored_patient.procedures.filter(kind=kind, performed_on=performed_on).exists():
        errors.add(first.number, "performed_on", f"This patient already has a {kind} recorded on this date.")


# --- Writing ------------------------------------------------------------------------------------


def _write(plan: _Plan, *, clinic: Clinic, stored: dict[str, Patient], errors: Errors, progress) -> list[int]:
    patients: dict[str, Patient] = {}
    for mrn, rows in plan.patients.items():
        if mrn in stored:
            patients[mrn] = stored[mrn]
            continue
        try:
            patients[mrn] = register_patient(clinic=clinic, **rows[0].patient)
        except ValidationError as exc:
            errors.add_validation(rows[0].number, exc, field_row=_column_on(rows[0].number))
    procedure_ids = []
    for rows in plan.procedures.values():
        patient = patients.get(rows[0].mrn)
        if patient is not None:
            try:
                procedure = record_procedure(
                    patient=patient, levels=[row.level for row in rows], schedule=False, **rows[0].procedure
                )
                procedure_ids.append(procedure.pk)
            except ValidationError as exc:
                errors.add_validation(rows[0].number, exc, field_row=_level_or_procedure_column(rows))
        if progress:
            progress(len(rows))
    schedule_procedures(procedure_ids=procedure_ids)  # all planned at once: the same plan, far fewer queries
    return procedure_ids


def _level_or_procedure_column(rows: list[ParsedRow]) -> Callable[[str], tuple[int, str]]:
    """`record_procedure` names a level's error `levels[i].field`: that is the row of level i."""

    def locate(name: str) -> tuple[int, str]:
        match = re.fullmatch(r"levels\[(\d+)\]\.(\w+)", name)
        if match:
            return rows[int(match[1])].number, COLUMN_OF_FIELD.get(match[2], match[2])
        return rows[0].number, COLUMN_OF_FIELD.get(name, name)

    return locate


def _in_file_order(errors: list[RowError]) -> list[RowError]:
    position = {name: index for index, name in enumerate(COLUMN_NAMES)}
    return sorted(errors, key=lambda error: (error.row, position.get(error.field, -1)))


def _validate(plan: _Plan, *, clinic: Clinic, stored: dict[str, Patient], errors: Errors) -> None:
    for mrn, patient_rows in plan.patients.items():
        _validate_patient(patient_rows, clinic=clinic, stored=stored.get(mrn), errors=errors)
    for procedure_rows in plan.procedures.values():
        _validate_procedure(procedure_rows, stored_patient=stored.get(procedure_rows[0].mrn), errors=errors)


def _write_and_count(
    plan: _Plan, *, clinic: Clinic, stored: dict[str, Patient], errors: Errors, progress
) -> dict[str, int]:
    """Write the validated plan, mark the checkpoints already past for review, and count what was written."""
    procedure_ids = _write(plan, clinic=clinic, stored=stored, errors=errors, progress=progress)
    needs_review = mark_needs_review(procedure_ids=procedure_ids, now=timezone.now(), reason=NEEDS_REVIEW_REASON)
    return {
        "patients": len(plan.patients) - len(stored),
        "existing_patients": len(stored),
        "procedures": len(procedure_ids),
        "levels": TreatedLevel.objects.filter(procedure_id__in=procedure_ids).count(),
        "needs_review": needs_review,
        "checkpoints": Checkpoint.objects.filter(procedure_id__in=procedure_ids).count(),
    }


# --- The service --------------------------------------------------------------------------------


def import_rows(
    *,
    clinic: Clinic,
    rows: Iterable[Mapping[str, Any]],
    dry_run: bool,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import patients, procedures and treated levels into `clinic`, all or nothing.

    `rows` are the data rows in file order (the first is row 2), keyed by column name; blank rows
    are skipped. Every row is parsed and checked against the models' rules first; only if all
    pass are Patient rows created (`register_patient`) and procedures recorded
    (`record_procedure`: TreatedLevel, RiskAssessment, Checkpoint and CheckpointEvent rows), and
    each checkpoint already due is set `needs_review` with no `next_reminder_at` and a
    "replanned" CheckpointEvent. Any error, or `dry_run`, rolls everything back; the counts still
    say what the import creates. `progress(n)` is called as n more rows have been written.
    Nothing is enqueued.
    """
    rows = [{str(name).strip().lower(): value for name, value in row.items() if name is not None} for row in rows]
    errors = Errors()
    check_columns(rows, errors)
    if errors:
        return ImportResult(errors=_in_file_order(errors.items), dry_run=dry_run)
    parsed = [
        parse_row(number, row, clinic=clinic, errors=errors)
        for number, row in enumerate(rows, start=2)
        if not all(blank(value) for value in row.values())
    ]
    if not parsed:
        errors.add(1, "", "The file has no data rows.")
    counts: dict[str, int] = {}
    with transaction.atomic():
        if not dry_run:
            # Imports into one clinic run one after the other, so an MRN or procedure cannot be
            # imported twice by two requests at once; NO KEY UPDATE leaves patient inserts unblocked.
            Clinic.objects.select_for_update(no_key=True).get(pk=clinic.pk)
        plan = _group(parsed, errors)
        stored = {p.mrn: p for p in Patient.objects.filter(clinic=clinic, mrn__in=list(plan.patients))}
        _validate(plan, clinic=clinic, stored=stored, errors=errors)
        if not errors:
            counts = _write_and_count(plan, clinic=clinic, stored=stored, errors=errors, progress=progress)
        if errors or dry_run:
            transaction.set_rollback(True)
    return ImportResult(errors=_in_file_order(errors.items), counts={} if errors else counts, dry_run=dry_run)
