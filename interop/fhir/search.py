"""What every FHIR search and create shares (docs/fhir.md, "Search" and "Retrying a create"): `_id`,
`_lastUpdated`, paging with `_count` and `next` links, and conditional create (`If-None-Exist`, or the
search parameters in the POST's query string, as fhirpy's `get_or_create()` sends them)."""

from datetime import UTC, datetime, time, timedelta

from django.http import QueryDict
from django.utils.dateparse import parse_date, parse_datetime

from .base import FHIRError, int_id, with_versions

DEFAULT_COUNT = 50
MAX_COUNT = 500
COMPARATORS = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
# Query parameters that are not search parameters (they shape the reply).
CONTROL_PARAMS = {"_format", "_count", "_offset", "_pretty", "_summary"}


def values(params, name: str) -> list[str]:
    """Every value of a search parameter (repeated or comma-separated), blanks dropped."""
    return [part for value in params.getlist(name) for part in value.split(",") if part]


def search_filters(params) -> set[str]:
    return {name for name in params if name not in CONTROL_PARAMS}


def _moment(text: str) -> tuple[datetime, bool]:
    """The instant of a `_lastUpdated` value, and whether it is a whole day (a date without a time)."""
    text = text.replace(" ", "+")  # an unencoded "+" of the offset arrives as a space
    moment = parse_datetime(text.replace("Z", "+00:00")) if "T" in text else None
    if moment is not None:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), False
    day = parse_date(text) if len(text) == 10 else None
    if day is None:
        raise FHIRError(
            f"_lastUpdated {text!r} is not a date or an instant (e.g. gt2026-03-10T09:00:00Z).", path="_lastUpdated"
        )
    return datetime.combine(day, time.min, tzinfo=UTC), True


def common_filters(rows, params, field: str = "updated_at"):
    """`_id` (one or more ids) and `_lastUpdated` (gt, ge, lt, le or eq; a date, in UTC, or an instant)."""
    if "_id" in params:
        rows = rows.filter(pk__in=[pk for pk in (int_id(v) for v in values(params, "_id")) if pk])
    for value in params.getlist("_lastUpdated"):
        prefix, text = (value[:2], value[2:]) if value[:2] in {*COMPARATORS, "eq"} else ("eq", value)
        start, whole_day = _moment(text)
        if not whole_day:
            lookup = COMPARATORS.get(prefix, "exact")
            rows = rows.filter(**{f"{field}__{lookup}": start})
            continue
        end = start + timedelta(days=1)
        bounds = {"gt": {"gte": end}, "ge": {"gte": start}, "lt": {"lt": start}, "le": {"lt": end}}
        for lookup, moment in bounds.get(prefix, {"gte": start, "lt": end}).items():
            rows = rows.filter(**{f"{field}__{lookup}": moment})
    return rows


def _int_param(params, name: str, default: int, maximum: int | None = None) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit():
        raise FHIRError(f"{name} must be a whole number.", path=name)
    return min(int(raw), maximum) if maximum is not None else int(raw)


def page(view, rows, render):
    """A searchset Bundle of one page of `rows` (already ordered), with `self`, `next` and `previous`
    links; `total` counts every match."""
    params = view.request.query_params
    count = _int_param(params, "_count", DEFAULT_COUNT, MAX_COUNT)
    offset = _int_param(params, "_offset", 0)
    total = rows.count()
    resources = [render(row) for row in with_versions(rows)[offset : offset + count]] if count else []
    base = view.request.build_absolute_uri(view.request.path)

    def link(relation: str, at: int) -> dict:
        query = params.copy()
        query.setlist("_count", [str(count)])
        query.setlist("_offset", [str(at)])
        return {"relation": relation, "url": f"{base}?{query.urlencode()}"}

    links = [link("self", offset)]
    if count and offset + count < total:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    return view.bundle(resources, total=total, links=links)


def conditional_params(request) -> QueryDict | None:
    """The search of a conditional create: the If-None-Exist header, else search parameters in the POST's
    query string; None when neither is given."""
    header = request.headers.get("If-None-Exist")
    if header is not None:
        params = QueryDict(header.strip().lstrip("?"))
    else:
        params = request.query_params.copy()
        for name in CONTROL_PARAMS:
            params.pop(name, None)
        if not params:
            return None
    if not search_filters(params):
        raise FHIRError("If-None-Exist needs at least one search parameter.", path="If-None-Exist")
    return params


def existing_match(request, search, duplicates):
    """The one existing row that makes this create a no-op, or None to create.

    With a conditional create, `search(params)` decides: none → create, one → that row, several → 412.
    Without one, `duplicates` (the same patient, code, date or identifier; a queryset, or a function that
    returns one, so that a conditional create never pays for it) decides the same way, so that a retried
    create never makes a copy."""
    params = conditional_params(request)
    if params is not None:
        rows = search(params)
    else:
        rows = duplicates() if callable(duplicates) else duplicates
    found = list(rows[:2]) if rows is not None else []
    if len(found) > 1:
        raise FHIRError(
            "The conditional create matches more than one resource; make the search more specific.",
            status_code=412,
            code="duplicate",
        )
    return found[0] if found else None
