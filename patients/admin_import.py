"""Admin page "Import patients": upload a CSV or XLSX file, preview it, confirm the import.

The preview is a dry run of `importing.import_rows`. The uploaded bytes are kept in an `ImportPreview`
row of the uploader (never in the session, never in the page), so the confirm step imports exactly the
file that was previewed — validated again, since the registry may have changed in between. The row is
deleted when the import is confirmed, and by the retention sweep once it expires.
"""

import hashlib

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import access, importing
from .models import Clinic, ImportPreview, Patient

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
TOO_LARGE = "The file is larger than 10 MB; import it with `manage.py import_patients`."
# Preview and confirm each run the whole import (the preview then rolls it back), at some 25 queries
# per procedure: larger files would outlast a web worker's timeout and go to the command instead.
MAX_ROWS = 1000
PREVIEW_COLUMNS = ["mrn", "family_name", "procedure_ref", "kind", "performed_on", "level"]


def clinics_of(user) -> QuerySet[Clinic]:
    """The clinics `user` may import patients into."""
    return Clinic.objects.filter(id__in=access.clinics_for(user, access.Action.RECORD))


class ImportForm(forms.Form):
    clinic = forms.ModelChoiceField(queryset=Clinic.objects.none(), help_text="The clinic the patients belong to.")
    file = forms.FileField(help_text="CSV (UTF-8) or XLSX, at most 10 MB.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        clinics = clinics_of(user)
        self.fields["clinic"].queryset = clinics
        if len(clinics) == 1:
            self.fields["clinic"].initial = clinics[0]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(TOO_LARGE)
        if not upload.name.lower().endswith((".csv", ".xlsx")):
            raise forms.ValidationError("Upload a .csv or .xlsx file.")
        return upload


def _digest(clinic: Clinic, content: bytes) -> str:
    return hashlib.sha256(f"{clinic.pk}:".encode() + content).hexdigest()


def _check_permission(request: HttpRequest) -> None:
    if not clinics_of(request.user).exists():
        raise PermissionDenied


def _context(request: HttpRequest, **extra) -> dict:
    return {
        **admin.site.each_context(request),
        "title": "Import patients",
        "opts": Patient._meta,
        "columns": importing.COLUMNS,
        "max_rows": MAX_ROWS,
        **extra,
    }


def _preview(request: HttpRequest, *, clinic: Clinic, name: str, content: bytes, result=None) -> TemplateResponse:
    """Dry-run the file and show its first rows, each with its status, and every error."""
    try:
        rows = importing.read_rows(content, filename=name)
    except importing.UnreadableFile as exc:
        result, rows = importing.ImportResult(errors=[importing.RowError(exc.row, "", str(exc))]), []
    if len(rows) > MAX_ROWS:
        message = f"The file has {len(rows)} rows; here at most {MAX_ROWS}. Import it with `manage.py import_patients`."
        result = importing.ImportResult(errors=[importing.RowError(1, "", message)])
    if result is None:
        result = importing.import_rows(clinic=clinic, rows=rows, dry_run=True)
    by_row = result.errors_by_row()
    preview = [
        {"number": number, "cells": [row.get(name) for name in PREVIEW_COLUMNS], "errors": by_row.get(number, [])}
        for number, row in enumerate(rows[: importing.MAX_PREVIEW_ROWS], start=2)
    ]
    digest = _digest(clinic, content)
    if result.ok:
        ImportPreview.keep(user=request.user, clinic=clinic, file_name=name, digest=digest, content=content)
    else:
        ImportPreview.objects.filter(user=request.user).delete()
    context = _context(
        request,
        clinic=clinic,
        file_name=name,
        result=result,
        row_count=len(rows),
        preview=preview,
        preview_columns=PREVIEW_COLUMNS,
        digest=digest,
    )
    return TemplateResponse(request, "admin/patients/import/preview.html", context)


@transaction.atomic
def _confirm(request: HttpRequest) -> HttpResponse:
    # Locked: a double-clicked confirm waits here and then finds the row gone.
    stored = (
        ImportPreview.objects.current()
        .select_for_update()
        .filter(user=request.user, digest=request.POST.get("digest", ""))
        .first()
    )
    if stored is None:
        messages.error(request, "That preview is no longer current: upload the file again.")
        return redirect("patients-import")
    clinic = clinics_of(request.user).filter(pk=stored.clinic_id).first()
    if clinic is None:
        raise PermissionDenied
    content, name = bytes(stored.content), stored.file_name
    rows = importing.read_rows(content, filename=name)
    result = importing.import_rows(clinic=clinic, rows=rows, dry_run=False)
    if not result.ok:
        return _preview(request, clinic=clinic, name=name, content=content, result=result)
    stored.delete()
    messages.success(request, f"The file was imported into {clinic}: {result.summary()}.")
    return redirect("admin:patients_patient_changelist")


class SizeLimitedUpload(FileUploadHandler):
    """Stops reading an upload as soon as it passes `limit` bytes, before the rest reaches memory or disk."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit, self.exceeded = limit, False

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


@csrf_exempt  # the upload limit must be in place before anything reads the body; CSRF is checked below
def import_view(request: HttpRequest) -> HttpResponse:
    limiter = SizeLimitedUpload(request, MAX_UPLOAD_BYTES)
    request.upload_handlers.insert(0, limiter)
    return _import_view(request, limiter)


@csrf_protect
def _import_view(request: HttpRequest, limiter: SizeLimitedUpload) -> HttpResponse:
    _check_permission(request)
    if request.method == "POST" and "confirm" in request.POST:
        return _confirm(request)
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    if limiter.exceeded:
        form.add_error("file", TOO_LARGE)
    elif request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        return _preview(request, clinic=form.cleaned_data["clinic"], name=upload.name, content=upload.read())
    return TemplateResponse(request, "admin/patients/import/form.html", _context(request, form=form))


def template_view(request: HttpRequest) -> HttpResponse:
    _check_permission(request)
    response = HttpResponse(importing.template_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="patients-import-template.csv"'
    return response


urlpatterns = [
    path("", admin.site.admin_view(import_view), name="patients-import"),
    path("template.csv", admin.site.admin_view(template_view), name="patients-import-template"),
]
