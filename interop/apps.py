from django.apps import AppConfig


class InteropConfig(AppConfig):
    """What faces an EHR: the REST and FHIR APIs, token auth, idempotency and OpenAPI. It has no models."""

    name = "interop"

    def ready(self) -> None:
        from . import openapi  # noqa: F401 - registers the OpenAPI description of bearer tokens
