"""API personas: bearer tokens for clinics and scopes, and a throttle that starts each test empty."""

import pytest
from django.apps import apps
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.test import APIClient

from interop.auth import create_api_client
from interop.throttling import ClientRateThrottle

BASE = "/api/v1"


def snapshot() -> dict[str, list]:
    """Every row of the registry and alerting tables with its last change, so that a write of any kind shows."""
    skipped = {"patients.ApiClient", "alerts.WorkerHeartbeat"}  # a client's last_used_at records the call itself
    rows = {}
    for model in [*apps.get_app_config("patients").get_models(), *apps.get_app_config("alerts").get_models()]:
        if model._meta.label in skipped:
            continue
        fields = ["pk", "updated_at"] if any(f.name == "updated_at" for f in model._meta.fields) else ["pk"]
        rows[model._meta.label] = sorted(model.objects.values_list(*fields))
    return rows


def changed_tables(before: dict, after: dict) -> list[str]:
    return [label for label in before if before[label] != after[label]]


@pytest.fixture
def fresh_throttle(monkeypatch):
    """Token ids restart with every fresh test database while Redis keeps each id's request history for a
    minute, so a quick re-run could be throttled by the previous one: give each test its own empty history."""
    monkeypatch.setattr(ClientRateThrottle, "cache", LocMemCache("api-throttle-tests", {}))


@pytest.fixture
def make_token(db):
    """make_token(clinics=[...], scopes=[...]) -> raw bearer token."""

    def build(*, clinics, scopes=("read", "write"), name="EHR"):
        _, raw = create_api_client(name=name, clinics=list(clinics), scopes=list(scopes))
        return raw

    return build


@pytest.fixture
def bearer():
    """bearer(token) -> an APIClient that sends `Authorization: Bearer <token>` (None: no header)."""

    def build(token=None):
        client = APIClient()
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return build


@pytest.fixture
def ehr(make_token, bearer, clinic):
    """Northside's EHR integration, with read and write scopes."""
    return bearer(make_token(clinics=[clinic]))
