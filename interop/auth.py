"""Who may call the REST and FHIR APIs, and on which clinics' data.

Machine clients (one per EHR integration) send `Authorization: Bearer <token>`; staff may use their
admin session in the browsable API. Every queryset is narrowed to the caller's clinics, so another
clinic's object is a 404, in lists too. Permission is deny by default.
"""

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from patients import access, audit
from patients.access import Action
from patients.models import ApiClient, Clinic

TOKEN_PREFIX = "kf_"  # noqa: S105 - a label that makes leaked tokens easy to spot, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_client(*, name: str, clinics: list[Clinic], scopes: list[str]) -> tuple[ApiClient, str]:
    """Create a client and return it with its token, which is shown once and stored only hashed."""
    from django.core.exceptions import ValidationError

    unknown = set(scopes) - {"read", "write"}
    if not scopes or unknown:
        raise ValidationError({"scopes": [f"Scopes must be read and/or write, got {', '.join(scopes) or 'none'}."]})
    if not clinics:
        raise ValidationError({"clinics": ["Give at least one clinic."]})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        client = ApiClient.objects.create(
            name=name, scopes=sorted(set(scopes)), token_hash=hash_token(raw), token_prefix=raw[:10]
        )
        client.clinics.set(clinics)
    return client, raw


@dataclass(frozen=True)
class ClientPrincipal:
    """Stands in for `request.user` when a machine client calls."""

    client: ApiClient
    is_authenticated: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False

    @property
    def pk(self):
        return None

    def __str__(self) -> str:
        return f"API client #{self.client.pk}"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from None
        client = ApiClient.objects.filter(token_hash=hash_token(raw)).first()
        if client is None or not client.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        audit.set_client(client.pk)
        now = timezone.now()
        if client.last_used_at is None or now - client.last_used_at > timezone.timedelta(minutes=1):
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)  # at most once a minute per client
        return ClientPrincipal(client=client), client

    def authenticate_header(self, request):
        return self.keyword


def caller_clinic_ids(request, *, for_write: bool | None = None, action: Action | None = None) -> list[int]:
    """The clinics where the caller (a client's principal or a staff user) may do `action`, as
    `patients.access` decides; by default VIEW for a read and RECORD for a write."""
    if action is None:
        writing = request.method not in permissions.SAFE_METHODS if for_write is None else for_write
        action = Action.RECORD if writing else Action.VIEW
    cache = request.__dict__.setdefault("_kf_clinic_ids", {})
    if action not in cache:
        cache[action] = list(access.clinics_for(getattr(request, "user", None), action))  # none for a schema run
    return cache[action]


def caller_clinics(request) -> QuerySet:
    return Clinic.objects.filter(id__in=caller_clinic_ids(request))


def caller_can_write(request, action: Action = Action.RECORD) -> bool:
    return bool(caller_clinic_ids(request, action=action))


def principal_key(request) -> str:
    if isinstance(request.auth, ApiClient):
        return f"client:{request.auth.pk}"
    return f"user:{request.user.pk}"


def request_actor(request):
    """(staff user or None, how) for the audit trail of an alert action."""
    if isinstance(request.auth, ApiClient):
        return None, f"api client #{request.auth.pk}"
    return request.user, "api"


class ClinicScopedAccess(permissions.BasePermission):
    """Reads need the read scope (or staff membership); writes need the write scope (or a staff
    role that may change patient data)."""

    message = "This token or account may not do that."

    def has_permission(self, request, view):
        user = request.user
        if isinstance(request.auth, ApiClient):
            scope = "read" if request.method in permissions.SAFE_METHODS else "write"
            if not request.auth.has_scope(scope):
                self.message = f"This client lacks the '{scope}' scope."
                return False
            return True
        if not (user and user.is_authenticated and user.is_staff):
            return False
        if settings.STAFF_REQUIRE_2FA and not user.is_verified():
            self.message = "Sign in to the admin with your two-factor code first."
            return False
        return request.method in permissions.SAFE_METHODS or caller_can_write(request, _write_action(view))


def _write_action(view) -> Action:
    return getattr(view, "write_action", Action.RECORD)


class ClinicScopedMixin:
    """Narrows `get_queryset()` to the clinics where the caller may read (GET) or do `write_action`
    (any other method), via `clinic_lookup`."""

    clinic_lookup = "clinic_id"
    write_action = Action.RECORD

    def scope(self, queryset: QuerySet) -> QuerySet:
        reading = self.request.method in permissions.SAFE_METHODS
        action = Action.VIEW if reading else self.write_action
        return queryset.filter(**{f"{self.clinic_lookup}__in": caller_clinic_ids(self.request, action=action)})

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            if self.request.method not in permissions.SAFE_METHODS and self._readable_elsewhere():
                # Visible but not changeable (e.g. an auditor's clinic): say so, rather than "not found".
                raise exceptions.PermissionDenied("Your role in this patient's clinic may not change it.") from None
            raise

    def _readable_elsewhere(self) -> bool:
        lookup = {self.lookup_field: self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)}
        readable = {f"{self.clinic_lookup}__in": caller_clinic_ids(self.request, for_write=False)}
        try:
            return self.get_queryset().model.objects.filter(**lookup, **readable).exists()
        except (TypeError, ValueError, DjangoValidationError):
            return False  # not even a well-formed id
