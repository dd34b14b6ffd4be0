"""How the REST API answers an error that DRF does not know about (REST_FRAMEWORK["EXCEPTION_HANDLER"]).

Every error body has one shape, documented as the `Error` schema (interop/openapi.py): a JSON object with
`detail` (a message about the request as a whole) and/or one list of messages per request field."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
from rest_framework.response import Response
from rest_framework.views import exception_handler

from patients.services import StateConflict

DATABASE_ERRORS = (OperationalError, InterfaceError)  # the database is unreachable: 503, nothing saved
DATABASE_UNAVAILABLE = "The service is temporarily unavailable (database unreachable). Nothing was saved; retry later."


def api_exception_handler(exc, context):
    """DRF's handler, plus: a change its object has already moved past is a 409 naming the object's state, a
    model or service ValidationError is a 400 with field messages, and an unreachable database is a 503
    with a clear body (the request wrote nothing)."""
    if isinstance(exc, StateConflict):
        return Response({"detail": exc.messages[0], "current_state": exc.state}, status=409)
    if isinstance(exc, DataError):
        return Response(
            {"detail": "The request holds a value the database cannot store (e.g. a NUL character)."}, status=400
        )
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(detail, status=400)
    if isinstance(exc, DATABASE_ERRORS):
        return Response(
            {"detail": DATABASE_UNAVAILABLE},
            status=503,
            headers={"Retry-After": "30"},
        )
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        # A ValidationError raised with a bare list (e.g. a NUL character in a query parameter): the same
        # object shape as every other error.
        response.data = {"detail": " ".join(str(message) for message in response.data)}
    return response


def not_found(request, exception):
    """The site's handler404: a URL under /api/ that matches no route (`/api/v1/alerts/0.5/`) gets the
    API's error body like any other 404 of the API, not the HTML page the rest of the site shows."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
