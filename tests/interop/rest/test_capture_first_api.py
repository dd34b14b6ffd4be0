"""Capture first through the API and FHIR: a report with only a red flag answered is taken, evaluated
and paged like a full one (spec v0.2 §1 capture rules)."""

import json

import pytest
from django.utils import timezone

from alerts.models import Alert, Delivery, DeliveryKind, SymptomReport

pytestmark = pytest.mark.django_db


@pytest.fixture
def paged_procedure(make_patient, make_procedure, clinician):
    return make_procedure(patient=make_patient(responsible_clinician=clinician))


@pytest.mark.hazard("HAZ-01")
def test_a_json_report_with_only_a_red_flag_is_accepted_and_pages(ehr, paged_procedure, clinician):
    response = ehr.post(
        "/api/v1/symptom-reports/", {"patient": paged_procedure.patient_id, "red_flags": ["RF-03"]}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["pain_now"] is None
    assert [(f["code"], f["tier"]) for f in body["findings"]] == [("RF-03", "emergency")]
    alert = Alert.objects.get(patient=paged_procedure.patient)
    assert Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT).recipient_user == clinician


def test_a_json_report_with_no_answer_at_all_is_refused(ehr, paged_procedure):
    response = ehr.post("/api/v1/symptom-reports/", {"patient": paged_procedure.patient_id}, format="json")

    assert response.status_code == 400
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-01")
def test_a_questionnaire_response_with_only_a_red_flag_is_accepted_and_pages(ehr, paged_procedure, clinician):
    body = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://kyphofollow.invalid/fhir/Questionnaire/kyphofollow-checkin",
        "status": "completed",
        "subject": {"reference": f"Patient/{paged_procedure.patient_id}"},
        "authored": timezone.now().isoformat(),
        "item": [{"linkId": "RF-01", "answer": [{"valueBoolean": True}]}],
    }

    response = ehr.post("/fhir/QuestionnaireResponse", data=json.dumps(body), content_type="application/fhir+json")

    assert response.status_code == 201, response.content
    report = SymptomReport.objects.get(procedure=paged_procedure)
    assert (report.source, report.red_flags, report.pain_now) == ("fhir", ["RF-01"], None)
    assert "RF-02" in report.unanswered and "pain_now" in report.unanswered
    alert = Alert.objects.get(patient=paged_procedure.patient)
    assert (alert.code, alert.tier) == ("RF-01", "emergency")
    assert Delivery.objects.get(alert=alert, kind=DeliveryKind.ALERT).recipient_user == clinician
    read = ehr.get(f"/fhir/QuestionnaireResponse/{report.pk}").json()
    assert [item["linkId"] for item in read["item"]] == ["RF-01"]


def test_the_questionnaire_asks_the_red_flags_first_and_requires_nothing(ehr, clinic):
    items = ehr.get("/fhir/Questionnaire/kyphofollow-checkin").json()["item"]

    assert [item["linkId"] for item in items[:10]] == [f"RF-{n:02d}" for n in range(1, 11)]
    assert not any(item.get("required") for item in items)
