"""Resource versions (docs/fhir.md, "Versions"): `meta.versionId`, `ETag: W/"n"`, `If-Match` and vread.

The version of a row is the number of changes recorded for it, read from a record that is written in
the same transaction as the change itself, so it holds under concurrency:
- Patient and Procedure: their audit history (django-simple-history, patients/models/audit.py), one record
  per save.
- Task (a checkpoint) and Flag (an alert): their event log, one event per transition.
- Observation and MedicationStatement/Request: the stored result's own counter.
- QuestionnaireResponse: a submitted report is never changed, so it is always version 1.
Only Patient and Procedure keep their past versions; for the others `vread` serves the current one.
"""

import re

from rest_framework.response import Response

from .base import FHIRError, FHIRView, version_of


def etag(version: int | str) -> str:
    return f'W/"{version}"'


def parse_etag(header: str | None, name: str = "If-Match") -> str | None:
    """The version named by an ETag-style header (`W/"3"`, `"3"` or `3`); None if the header is absent."""
    if header is None:
        return None
    match = re.fullmatch(r'\s*(?:W/)?"?([A-Za-z0-9\-.]{1,64})"?\s*', header)
    if not match:
        raise FHIRError(f'{name} must be an ETag such as W/"3".', path=name)
    return match.group(1)


def check_if_match(request, row) -> None:
    """412 when the request's If-Match names another version than the current one of `row` (which the
    caller holds locked)."""
    wanted = parse_etag(request.headers.get("If-Match"))
    if wanted is not None and wanted != str(version_of(row)):
        raise FHIRError(
            f"Version {wanted} is not the current version ({version_of(row)}); read the resource again.",
            status_code=412,
            code="conflict",
        )


def historical(row, version: str):
    """`row` as it was at `version` (a model instance with that version's field values), or None when
    that version is not kept."""
    if getattr(type(row), "history", None) is None or not version.isdigit() or int(version) < 1:
        return None
    record = row.history.order_by("history_id")[int(version) - 1 : int(version)].first()
    if record is None or record.history_type == "-":
        return None
    return record


class VersionedInstanceView(FHIRView):
    """read and vread (`GET <type>/<id>/_history/<version>`) of one resource type. Each subclass defines
    `row(pk)`, which finds the caller's row (404 otherwise), and `render(row) -> dict`, which builds the
    resource."""

    resource_type = ""

    def get(self, request, pk, vid=None):
        row = self.row(pk)
        if vid is None or vid == str(version_of(row)):
            return Response(self.render(row))
        record = historical(row, vid)
        if record is None:
            raise FHIRError(f"{self.resource_type}/{pk} has no version {vid} that is kept.", status_code=404)
        resource = self.render(record.instance)
        resource["meta"] = {"versionId": vid, "lastUpdated": record.history_date.isoformat()}
        return Response(resource)
