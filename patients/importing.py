"""Onboarding existing patients: one flat CSV or XLSX file → patients, procedures, treated levels, schedules.

The file has a header row (row 1) and one row per treated level; rows sharing a `procedure_ref` are
one procedure, rows sharing an `mrn` are one patient. Column names are case-insensitive; only the
required columns must be present, a missing optional column counts as blank everywhere.

Patient columns (the same values on every row of one MRN):
    mrn*, given_name*, family_name*, birth_date*, sex (female/male/other/unknown, blank = unknown),
    email, phone, language (blank = en), timezone (IANA name, blank = the clinic's), email_consent,
    bmd_lowest_t_score (−6.0…+3.0), dxa_date, regular_outdoor_activity, on_osteoporosis_med,
    osteoporosis_drug, osteoporosis_med_started_on, bmi (12…50), prior_vertebral_fractures (0…15)
Procedure columns (the same values on every row of one procedure_ref):
    procedure_ref*, kind* (kyphoplasty/vertebroplasty), performed_on*, fracture_diagnosed_on,
    baseline_pain (0…10), facet_joint_violation, posterior_fascia_oedema, brace_prescribed
Level columns (one level per row):
    level* (T1…L5), cement_leakage, leak_site (intradiscal/paravertebral/venous/canal/other),
    cement_distribution (confluent/separated), intravertebral_cleft, hounsfield_units (−50…400)

(* required.) Dates are ISO (YYYY-MM-DD) or spreadsheet dates; yes/no columns take
yes/no/true/false/1/0, blank = not recorded (email_consent and brace_prescribed: blank = no).

An MRN already registered in the clinic is accepted only when every patient column present in the
file equals the stored record; the row's procedures are then added to that patient, and a procedure
of the same kind on the same date as one already recorded is refused, so importing a file twice
imports nothing the second time. Any other existing MRN is an error: an import never changes a
registered patient.

`import_rows` validates every row before writing, reports every error as (row, column, message) —
a patient's errors on its first row, a procedure's on its first row — and writes nothing if there
is any. Each procedure is recorded with `services.record_procedure`; then all are assessed and
planned at once (`services.schedule_procedures`); checkpoints whose due moment has already passed are marked
`needs_review` and get no reminder.
"""

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import tablib
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.utils import timezone

from .models import Checkpoint, CheckpointEvent, Clinic, Patient, Procedure, TreatedLevel
from .services import record_procedure, register_patient, schedule_procedures

NEEDS_REVIEW_REASON = "imported: already past, review"
MAX_PREVIEW_ROWS = 50


_TYPE_LABELS = {"date": "date, YYYY-MM-DD", "bool": "yes/no", "decimal": "number", "int": "whole number"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text, choice, level, date, bool, decimal, int
    help: str
    required: bool = False
    field: str = ""  # the model field, when it is not `name`

    @property
    def model_field(self) -> str:
        return self.field or self.name

    @property
    def type_label(self) -> str:
        return _TYPE_LABELS.get(self.kind, "text")


PATIENT_COLUMNS = [
    Column("mrn", "text", "Medical record number, unique within the clinic; groups the rows of one patient.", True),
    Column("given_name", "text", "", True),
    Column("family_name", "text", "", True),
    Column("birth_date", "date", "Age 40–110.", True),
    Column("sex", "choice", "female, male, other or unknown (blank: unknown)."),
    Column("email", "text", ""),
    Column("phone", "text", ""),
    Column("language", "choice", "Language code (blank: en)."),
    Column("timezone", "text", "IANA time zone, e.g. Europe/London (blank: the clinic's).", field="time_zone"),
    Column("email_consent", "bool", "The patient agreed to receive e-mail (blank: no)."),
    Column("bmd_lowest_t_score", "decimal", "Lowest DXA T-score, −6.0 to +3.0."),
    Column("dxa_date", "date", ""),
    Column("regular_outdoor_activity", "bool", ""),
    Column("on_osteoporosis_med", "bool", ""),
    Column("osteoporosis_drug", "text", ""),
    Column("osteoporosis_med_started_on", "date", ""),
    Column("bmi", "decimal", "kg/m², 12 to 50."),
    Column("prior_vertebral_fractures", "int", "Count, 0 to 15."),
]
PROCEDURE_COLUMNS = [
    Column("procedure_ref", "text", "Any key of yours; groups the rows (levels) of one procedure.", True),
    Column("kind", "choice", "kyphoplasty or vertebroplasty.", True),
    Column("performed_on", "date", "Day 0 of the follow-up.", True),
    Column("fracture_diagnosed_on", "date", "Blank: the procedure date is used (flagged)."),
    Column("baseline_pain", "int", "Pain NRS 0–10 before the procedure."),
    Column("facet_joint_violation", "bool", ""),
    Column("posterior_fascia_oedema", "bool", ""),
    Column("brace_prescribed", "bool", "Blank: no."),
]
LEVEL_COLUMNS = [
    Column("level", "level", "Treated vertebra, T1–L5; one row per level.", True),
    Column("cement_leakage", "bool", ""),
    Column("leak_site", "choice", "intradiscal, paravertebral, venous, canal or other (needs cement_leakage yes)."),
    Column("cement_distribution", "choice", "confluent or separated."),
    Column("intravertebral_cleft", "bool", ""),
    Column("hounsfield_units", "int", "CT HU at this level, −50 to 400."),
]
COLUMNS = PATIENT_COLUMNS + PROCEDURE_COLUMNS + LEVEL_COLUMNS
COLUMN_NAMES = [column.name for column in COLUMNS]
_COLUMN_OF_FIELD = {column.model_field: column.name for column in COLUMNS}


@dataclass(frozen=True)
class RowError:
    row: int  # as in the file: the header is row 1
    field: str  # the column, or "" for the whole row
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}" if self.field else f"row {self.row}: {self.message}"


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
        c = self.counts
        return (
            f"{c.get('patients', 0)} new patient(s), {c.get('existing_patients', 0)} existing, "
            f"{c.get('procedures', 0)} procedure(s), {c.get('levels', 0)} level(s), "
            f"{c.get('checkpoints', 0)} checkpoint(s) of which {c.get('needs_review', 0)} already past (to review)"
        )


class UnreadableFile(Exception):
    """The file is not a CSV or XLSX table with a header row; `row` is the file row it stopped at."""

    def __init__(self, message: str, *, row: int = 1):
        super().__init__(message)
        self.row = row


# --- Reading ------------------------------------------------------------------------------------


def read_rows(content: bytes, *, filename: str) -> list[dict[str, Any]]:
    """The data rows of a CSV or XLSX file as dicts keyed by header; list index i is file row i + 2.

    Blank rows stay in the list (as rows of empty cells) so that row numbers match the file.
    """
    name = filename.lower()
    if name.endswith(".xlsx") or content.startswith(b"PK\x03\x04"):
        table = _read_xlsx(content)
    elif name.endswith(".csv") or not name.rpartition(".")[1]:
        table = _read_csv(content)
    else:
        raise UnreadableFile("Upload a .csv or .xlsx file.")
    if not table or all(_blank(cell) for cell in table[0]):
        raise UnreadableFile("The file is empty: the first row must name the columns.")
    header = [str(cell).strip().lower() if not _blank(cell) else "" for cell in table[0]]
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise UnreadableFile(f"Row 1 names these columns more than once: {', '.join(repeated)}.")
    return [
        {name: row[index] if index < len(row) else None for index, name in enumerate(header) if name}
        for row in table[1:]
    ]


def _read_xlsx(content: bytes) -> list[list[Any]]:
    try:
        dataset = tablib.Dataset().load(content, format="xlsx", headers=False)
    except Exception as exc:  # openpyxl raises many kinds on a damaged or foreign file
        raise UnreadableFile("The file could not be read as an XLSX workbook.") from exc
    return [list(row) for row in dataset]


def _read_csv(content: bytes) -> list[list[str]]:
    # The standard library's reader rather than tablib's: tablib drops blank lines, which would
    # shift every later row number away from what the user sees in the file.
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile("The CSV file is not UTF-8 text; save it as “CSV UTF-8”.") from exc
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return list(reader)
    except csv.Error as exc:  # a cell over csv.field_size_limit() (128 KiB), or a broken quote
        row = reader.line_num
        raise UnreadableFile(f"Row {row}: {_csv_problem(exc)}; nothing was imported.", row=row) from exc


def _csv_problem(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        return f"a cell is longer than {csv.field_size_limit() // 1024} KiB"
    return "the row is not valid CSV"


def template_csv() -> str:
    """The header row of an empty import file."""
    return ",".join(COLUMN_NAMES) + "\r\n"


# --- Parsing one cell ---------------------------------------------------------------------------

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BOOLS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


class _BadValue(Exception):
    pass


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a spreadsheet number such as an MRN
    if isinstance(value, datetime | date):
        raise _BadValue("Expected text, got a date.")
    return str(value).strip()


def _shown(value: Any) -> str:
    text = str(value).strip()
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    try:
        if _ISO_DATE.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise _BadValue(f"Enter a date as YYYY-MM-DD, got {_shown(value)}.")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in _BOOLS:
        return _BOOLS[text]
    raise _BadValue(f"Enter yes, no, true, false, 1 or 0, got {_shown(value)}.")


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _BadValue(f"Enter a number, got {_shown(value)}.")
    try:
        number = Decimal(str(value).strip().replace("−", "-"))
    except InvalidOperation:
        raise _BadValue(f"Enter a number, got {_shown(value)}.") from None
    if not number.is_finite():
        raise _BadValue(f"Enter a number, got {_shown(value)}.")
    return number


def _parse_int(value: Any) -> int:
    number = _parse_decimal(value)
    if number != number.to_integral_value():
        raise _BadValue(f"Enter a whole number, got {_shown(value)}.")
    return int(number)


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "choice": lambda value: _text(value).lower(),
    "level": lambda value: _text(value).upper(),
    "date": _parse_date,
    "bool": _parse_bool,
    "decimal": _parse_decimal,
    "int": _parse_int,
}


# --- Parsing rows -------------------------------------------------------------------------------


@dataclass
class _Row:
    number: int
    mrn: str
    ref: str
    patient: dict[str, Any]
    procedure: dict[str, Any]
    level: dict[str, Any]
    bad: set[str]  # columns whose cell could not be parsed
    columns: set[str]  # columns present in the file


class _Errors:
    def __init__(self) -> None:
        self.items: list[RowError] = []
        self._seen: set[tuple[int, str]] = set()

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, row: int, field: str, message: str) -> None:
        self._seen.add((row, field))
        self.items.append(RowError(row, field, message))

    def add_validation(self, row: int, exc: ValidationError, *, field_row: Callable[[str], tuple[int, str]]) -> None:
        """Add a model's errors; a column that already has an error on that row keeps only the first."""
        for name, messages in exc.message_dict.items():
            number, column = field_row(name) if name != NON_FIELD_ERRORS else (row, "")
            if (number, column) in self._seen and column:
                continue
            for message in messages:
                self.add(number, column, message)


def _model_values(model: type[models.Model], columns: list[Column], cells: dict[str, Any]) -> dict[str, Any]:
    """Model keyword arguments from parsed cells; a blank cell of a field with a default is left out."""
    values = {}
    for column in columns:
        if column.name not in cells:
            continue
        value = cells[column.name]
        model_field = model._meta.get_field(column.model_field)
        if value is None:
            if model_field.null:
                values[column.model_field] = None
            elif model_field.has_default():
                continue
            else:
                values[column.model_field] = "" if isinstance(model_field, models.CharField) else None
        else:
            values[column.model_field] = value
    return values


def _parse_row(number: int, raw: Mapping[str, Any], *, clinic: Clinic, errors: _Errors) -> _Row:
    cells: dict[str, Any] = {}
    bad: set[str] = set()
    for column in COLUMNS:
        if column.name not in raw:
            continue
        value = raw[column.name]
        if _blank(value):
            cells[column.name] = None
            if column.required:
                errors.add(number, column.name, "This field is required.")
                bad.add(column.name)
            continue
        try:
            cells[column.name] = _PARSERS[column.kind](value)
        except _BadValue as exc:
            errors.add(number, column.name, str(exc))
            bad.add(column.name)
    for name in bad:
        cells.pop(name, None)
    patient = _model_values(Patient, PATIENT_COLUMNS, cells)
    if not patient.get("time_zone") and "timezone" not in bad:
        patient["time_zone"] = clinic.time_zone
    return _Row(
        number=number,
        mrn=cells.get("mrn") or "",
        ref=cells.get("procedure_ref") or "",
        patient=patient,
        procedure=_model_values(Procedure, [c for c in PROCEDURE_COLUMNS if c.name != "procedure_ref"], cells),
        level=_model_values(TreatedLevel, LEVEL_COLUMNS, cells),
        bad=bad,
        columns=set(raw),
    )


def _check_columns(rows: list[dict[str, Any]], errors: _Errors) -> None:
    present = {name for row in rows for name in row}
    for name in sorted(present - set(COLUMN_NAMES)):
        errors.add(1, name, "Unknown column.")
    for column in COLUMNS:
        if column.required and column.name not in present:
            errors.add(1, column.name, "This required column is missing.")


# --- Grouping and validation --------------------------------------------------------------------


@dataclass
class _Plan:
    patients: dict[str, list[_Row]] = field(default_factory=dict)
    procedures: dict[str, list[_Row]] = field(default_factory=dict)


def _differing(first: _Row, row: _Row, attribute: str) -> list[str]:
    a, b = getattr(first, attribute), getattr(row, attribute)
    unparsed = first.bad | row.bad
    return [
        name
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name) and _COLUMN_OF_FIELD[name] not in unparsed
    ]


def _group(rows: list[_Row], errors: _Errors) -> _Plan:
    plan = _Plan()
    for row in rows:
        if not row.mrn or not row.ref:
            continue
        same_patient = plan.patients.setdefault(row.mrn, [])
        if same_patient:
            for name in _differing(same_patient[0], row, "patient"):
                errors.add(row.number, _COLUMN_OF_FIELD[name], f"Differs from row {same_patient[0].number} (same mrn).")
        same_patient.append(row)
        same_procedure = plan.procedures.setdefault(row.ref, [])
        if same_procedure:
            first = same_procedure[0]
            if first.mrn != row.mrn:
                errors.add(row.number, "procedure_ref", f"Row {first.number} uses this procedure_ref for another mrn.")
                continue
            for name in _differing(first, row, "procedure"):
                errors.add(row.number, _COLUMN_OF_FIELD[name], f"Differs from row {first.number} (same procedure_ref).")
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
    return lambda name: (row, _COLUMN_OF_FIELD.get(name, name))


def _validate_patient(rows: list[_Row], *, clinic: Clinic, stored: Patient | None, errors: _Errors) -> None:
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


def _validate_procedure(rows: list[_Row], *, stored_patient: Patient | None, errors: _Errors) -> None:
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


def _write(plan: _Plan, *, clinic: Clinic, stored: dict[str, Patient], errors: _Errors, progress) -> list[int]:
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


def _level_or_procedure_column(rows: list[_Row]) -> Callable[[str], tuple[int, str]]:
    """`record_procedure` names a level's error `levels[i].field`: that is the row of level i."""

    def locate(name: str) -> tuple[int, str]:
        match = re.fullmatch(r"levels\[(\d+)\]\.(\w+)", name)
        if match:
            return rows[int(match[1])].number, _COLUMN_OF_FIELD.get(match[2], match[2])
        return rows[0].number, _COLUMN_OF_FIELD.get(name, name)

    return locate


def _mark_past_checkpoints(procedure_ids: list[int], *, now: datetime) -> int:
    """Checkpoints already due when imported are for staff to review: no reminder about the past."""
    past = Checkpoint.objects.filter(procedure_id__in=procedure_ids).filter(
        models.Q(due_at__lte=now) | models.Q(next_reminder_at__lte=now)
    )
    ids = list(past.values_list("id", flat=True))
    Checkpoint.objects.filter(id__in=ids).update(needs_review=True, next_reminder_at=None, updated_at=now)
    CheckpointEvent.objects.bulk_create(
        CheckpointEvent(checkpoint_id=pk, kind=CheckpointEvent.Kind.REPLANNED, at=now, reason=NEEDS_REVIEW_REASON)
        for pk in ids
    )
    return len(ids)


def _in_file_order(errors: list[RowError]) -> list[RowError]:
    position = {name: index for index, name in enumerate(COLUMN_NAMES)}
    return sorted(errors, key=lambda error: (error.row, position.get(error.field, -1)))


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
    errors = _Errors()
    result = ImportResult(dry_run=dry_run)
    _check_columns(rows, errors)
    if errors:
        result.errors = _in_file_order(errors.items)
        return result
    parsed = [
        _parse_row(number, row, clinic=clinic, errors=errors)
        for number, row in enumerate(rows, start=2)
        if not all(_blank(value) for value in row.values())
    ]
    if not parsed:
        errors.add(1, "", "The file has no data rows.")
    with transaction.atomic():
        if not dry_run:
            # Imports into one clinic run one after the other, so an MRN or procedure cannot be
            # imported twice by two requests at once; NO KEY UPDATE leaves patient inserts unblocked.
            Clinic.objects.select_for_update(no_key=True).get(pk=clinic.pk)
        plan = _group(parsed, errors)
        stored = {p.mrn: p for p in Patient.objects.filter(clinic=clinic, mrn__in=list(plan.patients))}
        for mrn, patient_rows in plan.patients.items():
            _validate_patient(patient_rows, clinic=clinic, stored=stored.get(mrn), errors=errors)
        for procedure_rows in plan.procedures.values():
            _validate_procedure(procedure_rows, stored_patient=stored.get(procedure_rows[0].mrn), errors=errors)
        if not errors:
            procedure_ids = _write(plan, clinic=clinic, stored=stored, errors=errors, progress=progress)
            checkpoints = Checkpoint.objects.filter(procedure_id__in=procedure_ids)
            result.counts = {
                "patients": len(plan.patients) - len(stored),
                "existing_patients": len(stored),
                "procedures": len(procedure_ids),
                "levels": TreatedLevel.objects.filter(procedure_id__in=procedure_ids).count(),
                "needs_review": _mark_past_checkpoints(procedure_ids, now=timezone.now()),
                "checkpoints": checkpoints.count(),
            }
        if errors or dry_run:
            transaction.set_rollback(True)
    if errors:
        result.counts = {}
    result.errors = _in_file_order(errors.items)
    return result
