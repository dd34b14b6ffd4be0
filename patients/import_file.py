"""The import file: its columns, reading a CSV or XLSX file into rows, and parsing each row's cells
into model field values. Nothing here touches the database; `importing.py` validates and writes.

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
    baseline_pain (0…10), facet_joint_violation, posterior_fascia_oedema, brace_prescribed,
    ct_hu (−50…400) with ct_hu_level (T1…L5, the level measured: any level, usually an untreated one)
Level columns (one level per row):
    level* (T1…L5), cement_leakage, leak_site (intradiscal/paravertebral/venous/canal/other),
    cement_distribution (confluent/separated), intravertebral_cleft, hounsfield_units (−50…400)

(* required.) Dates are ISO (YYYY-MM-DD) or spreadsheet dates; yes/no columns take
yes/no/true/false/1/0, blank = not recorded (email_consent and brace_prescribed: blank = no).
"""

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import tablib
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from .models import Clinic, Patient, Procedure, TreatedLevel

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
    Column("ct_hu", "int", "CT HU, −50 to 400, at the level in ct_hu_level (any level, usually untreated)."),
    Column("ct_hu_level", "level", "Vertebra T1–L5 where ct_hu was measured (needed with ct_hu)."),
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
COLUMN_OF_FIELD = {column.model_field: column.name for column in COLUMNS}


@dataclass(frozen=True)
class RowError:
    row: int  # as in the file: the header is row 1
    field: str  # the column, or "" for the whole row
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}" if self.field else f"row {self.row}: {self.message}"


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
    if not table or all(blank(cell) for cell in table[0]):
        raise UnreadableFile("The file is empty: the first row must name the columns.")
    header = [str(cell).strip().lower() if not blank(cell) else "" for cell in table[0]]
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


def blank(value: Any) -> bool:
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
class ParsedRow:
    number: int
    mrn: str
    ref: str
    patient: dict[str, Any]
    procedure: dict[str, Any]
    level: dict[str, Any]
    bad: set[str]  # columns whose cell could not be parsed
    columns: set[str]  # columns present in the file


class Errors:
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


def parse_row(number: int, raw: Mapping[str, Any], *, clinic: Clinic, errors: Errors) -> ParsedRow:
    cells: dict[str, Any] = {}
    bad: set[str] = set()
    for column in COLUMNS:
        if column.name not in raw:
            continue
        value = raw[column.name]
        if blank(value):
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
    return ParsedRow(
        number=number,
        mrn=cells.get("mrn") or "",
        ref=cells.get("procedure_ref") or "",
        patient=patient,
        procedure=_model_values(Procedure, [c for c in PROCEDURE_COLUMNS if c.name != "procedure_ref"], cells),
        level=_model_values(TreatedLevel, LEVEL_COLUMNS, cells),
        bad=bad,
        columns=set(raw),
    )


def check_columns(rows: list[dict[str, Any]], errors: Errors) -> None:
    present = {name for row in rows for name in row}
    for name in sorted(present - set(COLUMN_NAMES)):
        errors.add(1, name, "Unknown column.")
    for column in COLUMNS:
        if column.required and column.name not in present:
            errors.add(1, column.name, "This required column is missing.")
