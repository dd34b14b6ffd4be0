from django.apps import AppConfig


class PatientsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "patients"

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the OpenAPI description of bearer tokens
