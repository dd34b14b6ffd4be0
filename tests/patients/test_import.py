"""Onboarding existing patients from a CSV or XLSX file: all or nothing, every error named by row and
column, past checkpoints reviewed instead of reminded."""

import csv
import io
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from alerts.models import CheckIn, Delivery
from alerts.reminders import sweep_reminders
from patients.importing import COLUMN_NAMES, NEEDS_REVIEW_REASON, import_rows, read_rows
from patients.models import Checkpoint, CheckpointEvent, Patient, Procedure, RiskAssessment, StaffRole, TreatedLevel
from tests.builders import make_staff

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).parent / "data" / "import_sample.csv"
SAMPLE_COUNTS = {"patients": 4, "existing_patients": 0, "procedures": 5, "levels": 8}
NUMBER_COLUMNS = {"bmd_lowest_t_score", "bmi", "prior_vertebral_fractures", "baseline_pain", "hounsfield_units"}
DATE_COLUMNS = {
    "birth_date",
    "dxa_date",
    "osteoporosis_med_started_on",
    "performed_on",
    "fracture_diagnosed_on",
}


def sample_rows() -> list[dict]:
    return read_rows(SAMPLE.read_bytes(), filename=SAMPLE.name)


def as_csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMN_NAMES)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def as_xlsx(rows: list[dict]) -> bytes:
    """The rows as a spreadsheet would hold them: dates as date cells, numbers as number cells."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(COLUMN_NAMES)
    for row in rows:
        cells = []
        for name in COLUMN_NAMES:
            value = row.get(name) or None
            if value and name in DATE_COLUMNS:
                value = date.fromisoformat(value)
            elif value and name in NUMBER_COLUMNS:
                value = float(value) if "." in value else int(value)
            cells.append(value)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def recent_procedure_rows(*, mrn="R1", days_ago=40) -> list[dict]:
    """One patient, one procedure `days_ago` days back: some checkpoints past, some to come."""
    performed = timezone.localdate() - timedelta(days=days_ago)
    return [
        {
            "mrn": mrn,
            "given_name": "Rita",
            "family_name": "Recent",
            "birth_date": "1950-02-03",
            "email": "rita@example.invalid",
            "timezone": "Europe/London",
            "email_consent": "yes",
            "procedure_ref": f"{mrn}-P",
            "kind": "kyphoplasty",
            "performed_on": performed.isoformat(),
            "fracture_diagnosed_on": (performed - timedelta(days=5)).isoformat(),
            "level": "L2",
        }
    ]


def error_places(result) -> set[tuple[int, str]]:
    return {(error.row, error.field) for error in result.errors}


# --- The service --------------------------------------------------------------------------------


def test_sample_csv_imports_patients_procedures_levels_and_schedules(clinic):
    result = import_rows(clinic=clinic, rows=sample_rows(), dry_run=False)

    assert result.errors == []
    assert {key: result.counts[key] for key in SAMPLE_COUNTS} == SAMPLE_COUNTS
    assert Patient.objects.filter(clinic=clinic).count() == 4
    assert Procedure.objects.count() == 5
    assert TreatedLevel.objects.count() == 8
    assert result.counts["checkpoints"] == Checkpoint.objects.count() > 0
    assert RiskAssessment.objects.filter(is_current=True).count() == 5
    assert all(procedure.checkpoints.exists() for procedure in Procedure.objects.all())
    jane = Patient.objects.get(mrn="A100")
    assert (jane.bmd_lowest_t_score, jane.email_consent, jane.sex) == (Decimal("-2.9"), True, "female")
    assert sorted(jane.procedures.get().levels.values_list("level", flat=True)) == ["L1", "T12"]
    albert = Patient.objects.get(mrn="A101")
    assert albert.procedures.count() == 2
    assert albert.time_zone == clinic.time_zone, "a blank timezone takes the clinic's"


def test_sample_as_xlsx_with_spreadsheet_dates_and_numbers_imports_the_same(clinic):
    rows = read_rows(as_xlsx(sample_rows()), filename="patients.xlsx")

    result = import_rows(clinic=clinic, rows=rows, dry_run=False)

    assert result.errors == []
    assert {key: result.counts[key] for key in SAMPLE_COUNTS} == SAMPLE_COUNTS
    maria = Patient.objects.get(mrn="A103")
    assert (maria.birth_date, maria.bmd_lowest_t_score, maria.prior_vertebral_fractures) == (
        date(1955, 12, 2),
        Decimal("-3.6"),
        3,
    )
    assert TreatedLevel.objects.get(procedure__patient=maria, level="T12").hounsfield_units == 58


def test_dry_run_counts_what_it_would_create_and_writes_nothing(clinic):
    result = import_rows(clinic=clinic, rows=sample_rows(), dry_run=True)

    assert result.errors == []
    assert result.counts["procedures"] == 5 and result.counts["checkpoints"] > 0
    assert not Patient.objects.exists() and not Checkpoint.objects.exists()


def test_a_file_with_bad_rows_imports_nothing_and_names_each_row_and_column(clinic):
    rows = sample_rows()
    rows[0]["level"] = "T13"  # row 2
    rows[2]["kind"] = "surgery"  # row 4
    rows[3]["performed_on"] = "01/09/2025"  # row 5
    rows[5]["level"] = "T11"  # row 7: T11 is already row 6's level in procedure K-4
    rows[7]["bmd_lowest_t_score"] = "-7"  # row 9
    rows.append(dict(rows[7], mrn="", procedure_ref="K-6", bmd_lowest_t_score=""))  # row 10

    result = import_rows(clinic=clinic, rows=rows, dry_run=False)

    assert error_places(result) == {
        (2, "level"),
        (4, "kind"),
        (5, "performed_on"),
        (7, "level"),
        (9, "bmd_lowest_t_score"),
        (10, "mrn"),
    }
    messages = [str(error) for error in result.errors]
    assert messages[0] == "row 2, level: Value 'T13' is not a valid choice."
    assert "row 5, performed_on: Enter a date as YYYY-MM-DD, got '01/09/2025'." in messages
    assert "row 7, level: T11 is already listed for this procedure in row 6." in messages
    assert "row 10, mrn: This field is required." in messages
    assert result.counts == {}
    assert not Patient.objects.exists() and not Procedure.objects.exists()


def test_a_row_that_contradicts_earlier_rows_of_its_patient_or_procedure_is_an_error(clinic):
    rows = sample_rows()
    rows[1]["birth_date"] = "1948-05-18"  # row 3, same MRN as row 2
    rows[6]["performed_on"] = "2025-12-16"  # row 8, same procedure_ref as row 6
    rows[7]["procedure_ref"] = "K-1"  # row 9: K-1 belongs to MRN A100

    result = import_rows(clinic=clinic, rows=rows, dry_run=False)

    assert error_places(result) == {(3, "birth_date"), (8, "performed_on"), (9, "procedure_ref")}
    assert not Patient.objects.exists()


def test_unknown_and_missing_columns_are_reported_on_the_header_row(clinic):
    rows = [{key: value for key, value in row.items() if key != "kind"} | {"t_score": "-2"} for row in sample_rows()]

    result = import_rows(clinic=clinic, rows=rows, dry_run=False)

    assert error_places(result) == {(1, "kind"), (1, "t_score")}


def test_blank_rows_are_skipped_and_row_numbers_stay_those_of_the_file(clinic):
    content = SAMPLE.read_bytes().replace(b"\nA101", b"\n\n,,,\nA101", 1)
    rows = read_rows(content, filename="with-gaps.csv")
    rows[4]["level"] = "X1"  # the A101 line, row 6 of the file: rows 4 and 5 are blank

    result = import_rows(clinic=clinic, rows=rows, dry_run=True)

    assert error_places(result) == {(6, "level")}


def test_an_mrn_registered_with_other_values_is_refused(clinic, make_patient):
    make_patient(mrn="A100", given_name="Someone", family_name="Else", birth_date=date(1948, 5, 17))

    result = import_rows(clinic=clinic, rows=sample_rows(), dry_run=False)

    assert (2, "given_name") in error_places(result)
    assert "already registered" in result.errors[0].message
    assert Patient.objects.count() == 1 and not Procedure.objects.exists()


def test_an_mrn_registered_with_the_same_values_gets_the_new_procedures(clinic):
    import_rows(clinic=clinic, rows=sample_rows()[:2], dry_run=False)
    new_procedure = [dict(sample_rows()[0], procedure_ref="K-9", performed_on="2026-02-02", level="L4")]

    result = import_rows(clinic=clinic, rows=new_procedure, dry_run=False)

    assert result.errors == []
    assert (result.counts["patients"], result.counts["existing_patients"], result.counts["procedures"]) == (0, 1, 1)
    assert Patient.objects.get(mrn="A100").procedures.count() == 2


def test_importing_the_same_file_twice_imports_nothing_the_second_time(clinic):
    import_rows(clinic=clinic, rows=sample_rows(), dry_run=False)

    result = import_rows(clinic=clinic, rows=sample_rows(), dry_run=False)

    assert error_places(result) == {
        (2, "performed_on"),
        (4, "performed_on"),
        (5, "performed_on"),
        (6, "performed_on"),
        (9, "performed_on"),
    }
    assert Procedure.objects.count() == 5


def test_past_checkpoints_are_marked_for_review_and_never_reminded(clinic):
    result = import_rows(clinic=clinic, rows=recent_procedure_rows(days_ago=40), dry_run=False)
    now = timezone.now()

    past = Checkpoint.objects.filter(due_at__lte=now)
    to_come = Checkpoint.objects.filter(due_at__gt=now)
    assert past.exists() and to_come.exists()
    assert result.counts["needs_review"] == past.count()
    assert set(past.values_list("needs_review", "next_reminder_at")) == {(True, None)}
    assert not to_come.filter(needs_review=True).exists()
    assert to_come.filter(next_reminder_at__isnull=False).exists()
    events = CheckpointEvent.objects.filter(kind=CheckpointEvent.Kind.REPLANNED, reason=NEEDS_REVIEW_REASON)
    assert sorted(events.values_list("checkpoint_id", flat=True)) == sorted(past.values_list("id", flat=True))

    assert sweep_reminders(now=timezone.now()) == 0
    assert not Delivery.objects.exists() and not CheckIn.objects.exists()
    first_to_come = to_come.exclude(next_reminder_at=None).order_by("next_reminder_at").first()
    sweep_reminders(now=first_to_come.next_reminder_at + timedelta(minutes=1))
    reached = set(Delivery.objects.values_list("checkpoint_id", flat=True)) | set(
        CheckIn.objects.values_list("checkpoint_id", flat=True)
    )
    assert first_to_come.pk in reached
    assert not reached & set(past.values_list("id", flat=True))


def test_a_2000_row_file_imports_completely(clinic):
    """The pace is set by one `record_procedure` (some 25 queries) per procedure; pytest-timeout guards it."""
    rows = []
    for number in range(1000):
        for level in ("T12", "L1"):
            row = recent_procedure_rows(mrn=f"BULK{number:04d}", days_ago=10 + number % 300)[0]
            rows.append(row | {"level": level})

    result = import_rows(clinic=clinic, rows=read_rows(as_csv(rows), filename="bulk.csv"), dry_run=False)

    assert result.errors == []
    assert (result.counts["patients"], result.counts["procedures"], result.counts["levels"]) == (1000, 1000, 2000)
    assert Procedure.objects.count() == 1000


# --- The admin page -----------------------------------------------------------------------------


def upload(client, clinic, content: bytes, name: str):
    file = io.BytesIO(content)
    file.name = name
    return client.post(reverse("patients-import"), {"clinic": clinic.pk, "file": file})


def test_admin_preview_lists_errors_by_row_and_column_and_imports_nothing(client, coordinator, clinic):
    rows = sample_rows()
    rows[0]["level"] = "T13"
    client.force_login(coordinator)

    response = upload(client, clinic, as_csv(rows), "patients.csv")

    assert response.status_code == 200
    assert error_places(response.context["result"]) == {(2, "level")}
    page = response.content.decode()
    assert "T13" in page and "nothing was imported" in page
    assert 'name="confirm"' not in page
    assert not Patient.objects.exists()


def test_admin_preview_then_confirm_imports_the_previewed_file(client, coordinator, clinic):
    client.force_login(coordinator)

    preview = upload(client, clinic, as_xlsx(sample_rows()), "patients.xlsx")

    assert preview.status_code == 200 and preview.context["result"].ok
    assert len(preview.context["preview"]) == 8
    assert not Patient.objects.exists(), "the preview is a dry run"
    response = client.post(reverse("patients-import"), {"confirm": "1", "digest": preview.context["digest"]})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:patients_patient_changelist")
    assert Procedure.objects.filter(patient__clinic=clinic).count() == 5
    again = client.post(reverse("patients-import"), {"confirm": "1", "digest": preview.context["digest"]})
    assert again.status_code == 302 and Procedure.objects.count() == 5, "a second confirm imports nothing"


def test_admin_sends_files_with_too_many_rows_to_the_command(client, coordinator, clinic, monkeypatch):
    monkeypatch.setattr("patients.admin_import.MAX_ROWS", 5)
    client.force_login(coordinator)

    response = upload(client, clinic, SAMPLE.read_bytes(), "patients.csv")

    assert "import_patients" in response.context["result"].errors[0].message
    assert not Patient.objects.exists()


def test_admin_confirm_of_a_stale_preview_imports_nothing(client, coordinator, clinic):
    client.force_login(coordinator)
    upload(client, clinic, SAMPLE.read_bytes(), "patients.csv")

    response = client.post(reverse("patients-import"), {"confirm": "1", "digest": "0" * 64})

    assert response.status_code == 302
    assert not Patient.objects.exists()


def test_admin_confirm_revalidates_against_the_registry(client, coordinator, clinic, make_patient):
    client.force_login(coordinator)
    preview = upload(client, clinic, SAMPLE.read_bytes(), "patients.csv")
    make_patient(mrn="A104", given_name="Registered", family_name="Meanwhile")

    response = client.post(reverse("patients-import"), {"confirm": "1", "digest": preview.context["digest"]})

    assert response.status_code == 200
    assert (9, "given_name") in error_places(response.context["result"])
    assert Patient.objects.count() == 1 and not Procedure.objects.exists()


def test_a_coordinator_of_another_clinic_cannot_import_into_this_clinic(client, other_clinic_coordinator, clinic):
    client.force_login(other_clinic_coordinator)

    response = upload(client, clinic, SAMPLE.read_bytes(), "patients.csv")

    assert response.status_code == 200
    assert "clinic" in response.context["form"].errors
    assert list(response.context["form"].fields["clinic"].queryset) == [
        other_clinic_coordinator.clinic_memberships.get().clinic
    ]
    assert not Patient.objects.exists()


def test_staff_without_the_add_patient_permission_are_refused(client, clinic):
    auditor = make_staff(username="audrey", clinic=clinic, role=StaffRole.AUDITOR)
    client.force_login(auditor)

    assert client.get(reverse("patients-import")).status_code == 403
    assert upload(client, clinic, SAMPLE.read_bytes(), "patients.csv").status_code == 403
    assert not Patient.objects.exists()


def test_admin_page_documents_the_columns_and_offers_the_template(client, coordinator):
    client.force_login(coordinator)

    page = client.get(reverse("patients-import")).content.decode()
    template = client.get(reverse("patients-import-template"))

    assert all(f"<code>{name}</code>" in page for name in COLUMN_NAMES)
    assert template.status_code == 200
    assert template.content.decode().strip().split(",") == COLUMN_NAMES


# --- The command --------------------------------------------------------------------------------


def test_command_imports_a_file_and_prints_the_summary(clinic):
    out, err = io.StringIO(), io.StringIO()

    call_command("import_patients", "--clinic", clinic.slug, str(SAMPLE), stdout=out, stderr=err)

    assert "Imported: 4 new patients, 0 patients already registered" in out.getvalue()
    assert Procedure.objects.count() == 5


def test_command_dry_run_writes_nothing(clinic):
    out = io.StringIO()

    call_command("import_patients", "--clinic", clinic.slug, "--dry-run", str(SAMPLE), stdout=out)

    assert "Dry run" in out.getvalue()
    assert not Patient.objects.exists()


def test_command_on_a_bad_file_exits_non_zero_prints_each_error_and_writes_nothing(clinic, tmp_path):
    rows = sample_rows()
    rows[0]["level"] = "T13"
    rows[2]["kind"] = "surgery"
    bad = tmp_path / "bad.csv"
    bad.write_bytes(as_csv(rows))
    err = io.StringIO()

    with pytest.raises(CommandError, match="2 error"):
        call_command("import_patients", "--clinic", clinic.slug, str(bad), stderr=err)

    lines = err.getvalue().splitlines()
    assert "row 2, level: Value 'T13' is not a valid choice." in lines
    assert "row 4, kind: Value 'surgery' is not a valid choice." in lines
    assert not Patient.objects.exists()


def test_command_refuses_an_unknown_clinic(clinic):
    with pytest.raises(CommandError, match="Unknown clinic"):
        call_command("import_patients", "--clinic", "nowhere", str(SAMPLE))
