"""A webhook secret that cannot sign (not `whsec_` + base64 of 24 to 64 bytes) is refused when saved,
rather than saved and leaving every delivery to that endpoint stuck."""

import base64

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from alerts.models import WebhookEndpoint

GOOD = "whsec_" + base64.b64encode(b"a-valid-secret-of-32-bytes-long!").decode()


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.invalid", "x" * 16))
    return client


def add(admin_client, clinic, secret):
    return admin_client.post(
        reverse("admin:alerts_webhookendpoint_add"),
        {"clinic": clinic.pk, "url": "https://ehr.example.org/hook", "secret": secret, "events": "[]", "active": "on"},
    )


@pytest.mark.parametrize(
    "secret, problem",
    [
        ("not-a-secret", "must start with whsec_"),
        ("whsec_", "24 to 64 bytes"),
        ("whsec_%%%not base64%%%", "must be base64"),
        ("whsec_" + base64.b64encode(b"too short").decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
        (GOOD[:-3], "must be base64"),
    ],
)
def test_a_malformed_secret_is_refused_on_save_naming_the_problem(admin_client, clinic, secret, problem):
    response = add(admin_client, clinic, secret)

    assert response.status_code == 200
    assert problem in str(response.context["adminform"].form.errors["secret"])
    assert not WebhookEndpoint.objects.exists()


def test_a_well_formed_secret_is_saved(admin_client, clinic):
    response = add(admin_client, clinic, GOOD)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert WebhookEndpoint.objects.get().secret == GOOD
