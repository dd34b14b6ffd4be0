"""A coordinator enters a report from a phone call in the admin; it is judged by the same rules as
the patient's own form, and only for the coordinator's own clinic."""

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from alerts.models import Alert, SymptomReport
from tests.builders import PERFORMED_ON, form_answers

PHONE = reverse("admin:alerts_symptomreport_phone")
SPEC_TIERS = {f"RF-{n:02d}": "emergency" if n <= 4 else "urgent" for n in range(1, 11)}


@pytest.fixture
def phoned_procedure(clock, make_patient, make_procedure):
    return make_procedure(patient=make_patient(given_name="Phoebe"), performed_on=PERFORMED_ON)


def phone_answers(procedure, **overrides) -> dict[str, str]:
    return {"procedure": str(procedure.pk), "reported_at": "2026-03-10T08:30", **form_answers(**overrides)}


def summary(report) -> list[tuple[str, str, str]]:
    return [(finding["code"], finding["tier"], finding["kind"]) for finding in report.findings]


@pytest.mark.parametrize("code", sorted(SPEC_TIERS))
@pytest.mark.django_db
def test_each_red_flag_entered_from_a_phone_call_fires_at_its_tier_exactly_as_from_the_form(
    client, coordinator, phoned_procedure, invite, code
):
    client.force_login(coordinator)

    response = client.post(PHONE, phone_answers(phoned_procedure, **{code: "yes"}))

    assert response.status_code == 302, response.context["form"].errors
    phoned = SymptomReport.objects.get(procedure=phoned_procedure)
    assert (phoned.source, phoned.entered_by) == ("phone", coordinator)
    assert summary(phoned) == [(code, SPEC_TIERS[code], "alert")]
    alert = Alert.objects.get(patient=phoned_procedure.patient)
    assert (alert.code, alert.tier) == (code, SPEC_TIERS[code])

    invitation = invite()
    patient = Client()
    patient.get(invitation.path)
    assert patient.post("/checkin/", form_answers(**{code: "yes"})).status_code == 302
    from_form = SymptomReport.objects.get(checkin=invitation.checkin)
    assert summary(from_form) == summary(phoned)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"pain_now": "11"}, "pain_now"),
        ({"pain_average_24h": "12"}, "pain_average_24h"),
    ],
)
@pytest.mark.django_db
def test_an_out_of_range_answer_gives_form_errors_and_saves_nothing(
    client, coordinator, phoned_procedure, overrides, field
):
    client.force_login(coordinator)

    response = client.post(PHONE, phone_answers(phoned_procedure, **overrides))

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not SymptomReport.objects.exists()
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_a_report_time_before_the_procedure_gives_a_form_error_and_saves_nothing(client, coordinator, phoned_procedure):
    client.force_login(coordinator)

    response = client.post(PHONE, {**phone_answers(phoned_procedure), "reported_at": "2026-03-08T10:00"})

    assert response.status_code == 200
    assert "reported_at" in response.context["form"].errors
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-61")
@pytest.mark.django_db
def test_a_coordinator_of_another_clinic_cannot_pick_this_clinics_procedure(
    client, other_clinic_coordinator, phoned_procedure
):
    client.force_login(other_clinic_coordinator)

    offered = client.get(PHONE, {"procedure": phoned_procedure.pk})
    response = client.post(PHONE, phone_answers(phoned_procedure, **{"RF-01": "yes"}))

    # No patient chosen (the procedure is not theirs to see): no answer form, only the search.
    assert offered.context["form"] is None and offered.context["chosen"] is None
    assert f'value="{phoned_procedure.pk}"' not in offered.content.decode()
    assert response.status_code == 200 and response.context["form"] is None
    assert "Find the patient first" in response.content.decode()
    assert not SymptomReport.objects.exists()
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_the_coordinator_of_the_clinic_is_offered_its_procedure(client, coordinator, phoned_procedure):
    client.force_login(coordinator)

    offered = client.get(PHONE, {"procedure": phoned_procedure.pk})

    assert offered.status_code == 200
    assert phoned_procedure in offered.context["form"].fields["procedure"].queryset


@pytest.mark.django_db
def test_a_call_just_taken_is_entered_at_the_clinics_local_time(client, coordinator, make_patient, make_procedure):
    """Summer in London: 14:00 on the coordinator's clock is 13:00 UTC. The form pre-fills and reads
    the time in the clinic's zone, so the call just taken is neither "in the future" nor an hour off."""
    with time_machine.travel(datetime(2026, 7, 10, 13, 0, tzinfo=UTC), tick=False):
        procedure = make_procedure(patient=make_patient(), performed_on=date(2026, 7, 9))
        client.force_login(coordinator)

        offered = client.get(PHONE, {"procedure": procedure.pk})
        response = client.post(PHONE, {**phone_answers(procedure), "reported_at": "2026-07-10T14:00"})

    assert response.status_code == 302, response.context["form"].errors
    assert offered.context["form"].initial["reported_at"] == "2026-07-10T14:00"
    assert SymptomReport.objects.get().reported_at == datetime(2026, 7, 10, 13, 0, tzinfo=UTC)
