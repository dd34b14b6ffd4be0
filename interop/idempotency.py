"""Retry-safe writes: a POST with an `Idempotency-Key` header is answered once, and every retry with the
same key gets that first answer back (stored in `patients.IdempotencyRecord`)."""

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
        principal = principal_key(request)
        fingerprint = hashlib.sha256(request.body).hexdigest()
        with transaction.atomic():
            try:
                with transaction.atomic():
                    # A concurrent request with the same key waits here until the first commits.
                    record = IdempotencyRecord.objects.create(
                        principal=principal,
                        key=key,
                        method=request.method,
                        path=request.path[:300],
                        request_hash=fingerprint,
                    )
            except IntegrityError:
                record = None
            if record is None:
                return _replay(principal, key, fingerprint)
            response = view_method(self, request, *args, **kwargs)
            record.status_code, record.response = response.status_code, response.data
            record.save(update_fields=["status_code", "response"])
            return response

    return wrapper


def _replay(principal: str, key: str, fingerprint: str) -> Response:
    record = IdempotencyRecord.objects.get(principal=principal, key=key)
    if record.request_hash != fingerprint:
        return Response({"detail": "This Idempotency-Key was used with a different request body."}, status=422)
    return Response(record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"})
