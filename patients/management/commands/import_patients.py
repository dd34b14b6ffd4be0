"""Import patients, procedures and treated levels from a CSV or XLSX file (see `patients.importing`)."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from patients.importing import UnreadableFile, import_rows, read_rows
from patients.models import Clinic


class Command(BaseCommand):
    help = (
        "Import patients, procedures and treated levels into one clinic from a CSV or XLSX file, one row per "
        "treated level. All or nothing: any bad row is reported as `row N, field: message` and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("--clinic", required=True, help="Slug of the clinic to import into.")
        parser.add_argument("file", type=Path, help="A .csv (UTF-8) or .xlsx file with a header row.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and count, then roll everything back.")

    def handle(self, *args, clinic: str, file: Path, dry_run: bool, **options):
        target = Clinic.objects.filter(slug=clinic).first()
        if target is None:
            raise CommandError(f"Unknown clinic slug: {clinic}.")
        try:
            rows = read_rows(file.read_bytes(), filename=file.name)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        except UnreadableFile as exc:
            raise CommandError(str(exc)) from None
        with tqdm(total=len(rows), unit="row", desc="Importing", file=sys.stderr, leave=False) as bar:
            result = import_rows(clinic=target, rows=rows, dry_run=dry_run, progress=bar.update)
        for error in result.errors:
            self.stderr.write(str(error))
        if result.errors:
            raise CommandError(f"{len(result.errors)} error(s) in {file.name}; nothing was imported.")
        prefix = "Dry run, nothing written; the file would import" if dry_run else "Imported"
        self.stdout.write(f"{prefix}: {result.summary()}.")
