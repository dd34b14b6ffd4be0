"""API personas for REST and FHIR: bearer tokens for clinics and scopes, and a throttle that starts each test empty."""

import pytest
from django.core.cache.backends.locmem import LocMemCache

from interop.throttling import ClientRateThrottle
from tests.builders import bearer_client, make_api_token


@pytest.fixture
def fresh_throttle(monkeypatch):
    """Token ids restart with every fresh test database while Redis keeps each id's request history for a
    minute, so a quick re-run could be throttled by the previous one: give each test its own empty history."""
    monkeypatch.setattr(ClientRateThrottle, "cache", LocMemCache("api-throttle-tests", {}))


@pytest.fixture
def make_token(db):
    """make_token(clinics=[...], scopes=[...]) -> raw bearer token."""
    return make_api_token


@pytest.fixture
def bearer():
    """bearer(token) -> an APIClient that sends `Authorization: Bearer <token>` (None: no header)."""
    return lambda token=None: bearer_client(token=token)
