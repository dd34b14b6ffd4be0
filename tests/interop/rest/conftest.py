"""REST persona: Northside's EHR integration."""

import pytest


@pytest.fixture
def ehr(make_token, bearer, clinic):
    """Northside's EHR integration, with read and write scopes."""
    return bearer(make_token(clinics=[clinic]))
