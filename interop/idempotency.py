"""Retry-safe writes: a POST with an `Idempotency-Key` header is answered once, and every retry with the
same key gets that first answer back (stored in `patients.IdempotencyRecord`). A key belongs to one
(client, method, route): the same key sent by another client or to another endpoint is a new request.
On an action (`/alerts/{id}/acknowledge/`) the object's id is part of the request: the same key sent for
another object is refused (422) like one sent with another body, never answered with the first object's
result.
Records are deleted after 24 hours (patients.retention)."""

import hashlib
from functools import wraps

from django.db import IntegrityError, transaction
from rest_framework import exceptions
from rest_framework.response import Response

from patients.models import IdempotencyRecord

from .auth import principal_key


def idempotent(view_method):
    """Make a POST safe to retry with an `Idempotency-Key` header: the first response is stored in the
    same transaction as the write, and a retry (even one racing the first) gets it back unchanged."""

    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view_method(self, request, *args, **kwargs)
        if not 1 <= len(key) <= 255:
            raise exceptions.ValidationError({"Idempotency-Key": ["Must be 1 to 255 characters."]})
        principal, route = principal_key(request), _route(request)
        fingerprint = _fingerprint(request)
        with transaction.atomic():
            try:
                with transaction.atomic():
                    # A concurrent request with the same key waits here until the first commits.
                    record = IdempotencyRecord.objects.create(
                        principal=principal,
                        key=key,
                        method=request.method,
                        path=route,
                        request_hash=fingerprint,
                    )
            except IntegrityError:
                record = None
            if record is None:
                return _replay(principal, request.method, route, key, fingerprint)
            response = view_method(self, request, *args, **kwargs)
            record.status_code, record.response = response.status_code, response.data
            record.save(update_fields=["status_code", "response"])
            return response

    return wrapper


def _fingerprint(request) -> str:
    """The body, and the object id of an action's path (an id, never an MRN: see `_route`)."""
    target = request.resolver_match.kwargs.get("pk")
    body = request.body if target is None else f"{target}\n".encode() + request.body
    return hashlib.sha256(body).hexdigest()


def _route(request) -> str:
    """The URL pattern that matched (`/api/v1/patients/by-mrn/<mrn>/`), never the path with its values."""
    match = request.resolver_match
    return ("/" + match.route.lstrip("^").rstrip("$"))[:300]


def _replay(principal: str, method: str, route: str, key: str, fingerprint: str) -> Response:
    record = IdempotencyRecord.objects.get(principal=principal, method=method, path=route, key=key)
    if record.request_hash != fingerprint:
        return Response(
            {"detail": "This Idempotency-Key was used with a different request body or object."}, status=422
        )
    return Response(record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"})
