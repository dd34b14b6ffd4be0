"""How the REST API answers an error that DRF does not know about (REST_FRAMEWORK["EXCEPTION_HANDLER"])."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler

DATABASE_UNAVAILABLE = "The service is temporarily unavailable (database unreachable). Nothing was saved; retry later."


def api_exception_handler(exc, context):
    """DRF's handler, plus: a model or service ValidationError is a 400 with field messages, and an
    unreachable database is a 503 with a clear body (the request wrote nothing)."""
    if isinstance(exc, DataError):
        return Response(
            {"detail": "The request holds a value the database cannot store (e.g. a NUL character)."}, status=400
        )
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(detail, status=400)
    if isinstance(exc, OperationalError | InterfaceError):
        return Response(
            {"detail": DATABASE_UNAVAILABLE},
            status=503,
            headers={"Retry-After": "30"},
        )
    return exception_handler(exc, context)
