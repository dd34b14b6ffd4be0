"""EHR integrations: API clients with their bearer-token digests, and the replayable first responses to
idempotent POSTs."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from .audit import audit_trail
from .clinic import Clinic


class ApiScope(models.TextChoices):
    READ = "read", _("Read")
    WRITE = "write", _("Write")


class ApiClient(models.Model):
    """One EHR integration: its clinics, its scopes and a bearer token stored only as a digest."""

    name = models.CharField(max_length=100)
    clinics = models.ManyToManyField(Clinic, related_name="api_clients")
    scopes = models.JSONField(default=list, help_text=_('"read", "write" or both.'))
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        max_length=12, editable=False, help_text=_("First characters, to tell tokens apart.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, help_text=_("A revoked client is refused at once."))

    history = audit_trail()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyRecord(models.Model):
    """The first response to a POST with an `Idempotency-Key`, replayed for any retry of it."""

    principal = models.CharField(max_length=60, help_text=_("client:<id> or user:<id>"))
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    # The route pattern (`/api/v1/patients/`), never the path: a path may carry an MRN. A key is one
    # request only for this principal, method and route; the same key elsewhere is a new request.
    path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["principal", "method", "path", "key"], name="one_response_per_idempotency_key_and_route"
            )
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
