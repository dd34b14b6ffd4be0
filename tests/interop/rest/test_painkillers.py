"""Painkillers are a set from every path: paracetamol and codeine (non-opioid and opioid) can both be
reported through REST and FHIR; an older client's single value is still read; "none" goes alone."""

import json

import pytest
from django.utils import timezone

from alerts.models import SymptomReport

pytestmark = pytest.mark.django_db
REPORTS = "/api/v1/symptom-reports/"


@pytest.fixture
def procedure(make_procedure):
    return make_procedure()


def test_rest_takes_several_painkillers(ehr, procedure):
    response = ehr.post(
        REPORTS,
        {"patient": procedure.patient_id, "pain_now": 5, "painkillers": ["opioid", "non_opioid"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["painkillers"] == ["non_opioid", "opioid"]
    assert SymptomReport.objects.get().painkillers == ["non_opioid", "opioid"]
    assert ehr.get(f"{REPORTS}{response.json()['id']}/").json()["painkillers"] == ["non_opioid", "opioid"]


def test_rest_still_reads_one_painkiller_sent_as_a_string(ehr, procedure):
    response = ehr.post(REPORTS, {"patient": procedure.patient_id, "painkillers": "opioid"}, format="json")
    assert response.status_code == 201, response.content
    assert SymptomReport.objects.get().painkillers == ["opioid"]


@pytest.mark.parametrize("value", [["none", "opioid"], ["aspirin"]])
def test_rest_refuses_none_with_a_painkiller_and_an_unknown_kind(ehr, procedure, value):
    response = ehr.post(REPORTS, {"patient": procedure.patient_id, "painkillers": value}, format="json")
    assert response.status_code == 400
    assert "painkillers" in json.dumps(response.json())
    assert not SymptomReport.objects.exists()


def test_fhir_takes_several_painkiller_answers_and_gives_them_back(ehr, procedure):
    coding = "https://kyphofollow.invalid/painkillers"
    body = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://kyphofollow.invalid/fhir/Questionnaire/kyphofollow-checkin",
        "status": "completed",
        "subject": {"reference": f"Patient/{procedure.patient_id}"},
        "authored": timezone.now().isoformat(),
        "item": [
            {
                "linkId": "painkillers",
                "answer": [
                    {"valueCoding": {"system": coding, "code": "non_opioid"}},
                    {"valueCoding": {"system": coding, "code": "opioid"}},
                ],
            }
        ],
    }
    response = ehr.post("/fhir/QuestionnaireResponse", data=json.dumps(body), content_type="application/fhir+json")
    assert response.status_code == 201, response.content
    report = SymptomReport.objects.get()
    assert report.painkillers == ["non_opioid", "opioid"]
    [item] = ehr.get(f"/fhir/QuestionnaireResponse/{report.pk}").json()["item"]
    assert [answer["valueCoding"]["code"] for answer in item["answer"]] == ["non_opioid", "opioid"]
    questionnaire = ehr.get("/fhir/Questionnaire/kyphofollow-checkin").json()
    [question] = [q for q in questionnaire["item"] if q["linkId"] == "painkillers"]
    assert question["repeats"] is True
