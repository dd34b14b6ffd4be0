"""Malformed check-in posts: NUL bytes, huge numbers, wrong choices, forged fields: a clear 400, nothing saved."""

import pytest

from alerts.models import CheckInState, SymptomReport
from tests.builders import form_answers

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "overrides",
    [
        {"other_symptoms": "pain\x00here"},
        {"pain_now": "99999999999999999999999"},
        {"pain_average_24h": "-1"},
        {"painkillers": "morphine-drip"},
        {"RF-01": "perhaps"},
        {"SO-2": "\x00"},
        {"other_symptoms": "x" * 5000},
    ],
    ids=["nul-text", "huge-pain", "negative-pain", "wrong-enum", "wrong-answer", "nul-choice", "too-long"],
)
def test_malformed_check_in_posts_are_refused_with_field_errors_and_save_nothing(client, invite, overrides):
    invitation = invite()
    client.get(invitation.path)

    response = client.post("/checkin/", form_answers(**overrides))

    assert response.status_code == 400
    assert response.context["form"].errors
    assert not SymptomReport.objects.exists()
    invitation.checkin.refresh_from_db()
    assert invitation.checkin.state == CheckInState.INVITED
