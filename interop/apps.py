from django.apps import AppConfig


class InteropConfig(AppConfig):
    """What faces an EHR: the REST and FHIR APIs, token auth, idempotency and OpenAPI. Its one model
    stores the FHIR results that completed a checkpoint (interop/models.py)."""

    name = "interop"

    def ready(self) -> None:
        from . import openapi  # noqa: F401 - registers the OpenAPI description of bearer tokens
