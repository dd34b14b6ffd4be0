"""A red flag sent by an EHR is kept beside an answer that cannot be read (HAZ-41) and for a patient out
of follow-up (HAZ-43), over REST and FHIR; the response says what was not taken and why."""

import json

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertEvent, Delivery, DeliveryKind, SymptomReport
from interop.fhir.codes import EXT_DROPPED_ANSWER, QUESTIONNAIRE_URL
from patients.models import PatientStatus
from patients.services import update_patient

pytestmark = pytest.mark.django_db
REPORTS = "/api/v1/symptom-reports/"


@pytest.fixture
def paged_procedure(make_patient, make_procedure, clinician):
    return make_procedure(patient=make_patient(responsible_clinician=clinician))


def paged(patient) -> Alert:
    alert = Alert.objects.get(patient=patient)
    assert Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).count() == 1
    return alert


def questionnaire_response(patient_id: int, *items: dict) -> str:
    return json.dumps(
        {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": QUESTIONNAIRE_URL,
            "status": "completed",
            "subject": {"reference": f"Patient/{patient_id}"},
            "authored": timezone.now().isoformat(),
            "item": list(items),
        }
    )


def post_fhir(ehr, body: str):
    return ehr.post("/fhir/QuestionnaireResponse", data=body, content_type="application/fhir+json")


@pytest.mark.hazard("HAZ-41")
def test_a_json_red_flag_beside_malformed_answers_is_accepted_paged_and_the_dropped_fields_are_listed(
    ehr, paged_procedure
):
    body = {
        "patient": paged_procedure.patient_id,
        "red_flags": ["RF-03"],
        "pain_now": 42,
        "second_opinion": {"SO-2": "maybe"},
        "wearing_brace": True,
    }

    response = ehr.post(REPORTS, body, format="json")

    assert response.status_code == 201, response.content
    answer = response.json()
    assert [(f["code"], f["tier"]) for f in answer["findings"]] == [("RF-03", "emergency")]
    assert answer["dropped_fields"] == [
        {"field": "pain_now", "reason": "Not a whole number from 0 to 10."},
        {"field": "second_opinion", "reason": "Not one of the allowed answers."},
    ]
    assert any("pain_now" in words for words in answer["warnings"])
    assert (answer["pain_now"], answer["second_opinion"], answer["wearing_brace"]) == (None, {}, True)
    assert "42" not in json.dumps(answer["dropped_fields"]) and "maybe" not in json.dumps(answer["warnings"])
    assert paged(paged_procedure.patient).code == "RF-03"


@pytest.mark.hazard("HAZ-41")
def test_a_json_report_whose_only_content_is_malformed_is_still_a_400_with_field_errors(ehr, paged_procedure):
    response = ehr.post(REPORTS, {"patient": paged_procedure.patient_id, "pain_now": 42}, format="json")

    assert response.status_code == 400
    assert "pain_now" in json.dumps(response.json())
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-41")
def test_the_openapi_schema_documents_the_dropped_fields_and_warnings(ehr):
    schema = ehr.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    report = schema["components"]["schemas"]["SymptomReport"]["properties"]
    assert report["dropped_fields"]["readOnly"] and "could not be read" in report["dropped_fields"]["description"]
    assert report["warnings"]["readOnly"]
    create = schema["paths"][REPORTS]["post"]["description"]
    assert "dropped_fields" in create and "never refused for another answer" in create


@pytest.mark.hazard("HAZ-41")
def test_a_questionnaire_response_red_flag_beside_unreadable_answers_is_accepted_and_names_them(ehr, paged_procedure):
    body = questionnaire_response(
        paged_procedure.patient_id,
        {"linkId": "RF-01", "answer": [{"valueBoolean": True}]},
        {"linkId": "pain_now", "answer": [{"valueInteger": 11}]},
        {"linkId": "pain_average_24h", "answer": [{"valueString": "seven"}]},
        {"linkId": "painkillers", "answer": [{"valueCoding": {"code": "morphine-drip"}}]},
        {"linkId": "doing_physio", "answer": [{"valueBoolean": False}]},
    )

    response = post_fhir(ehr, body)

    assert response.status_code == 201, response.content
    report = SymptomReport.objects.get(procedure=paged_procedure)
    assert (report.red_flags, report.pain_now, report.pain_average_24h, report.painkillers, report.doing_physio) == (
        ["RF-01"],
        None,
        None,
        [],
        False,
    )
    dropped = {
        parts["linkId"]: parts["reason"]
        for ext in response.json()["extension"]
        if ext["url"] == EXT_DROPPED_ANSWER
        for parts in [{part["url"]: part["valueString"] for part in ext["extension"]}]
    }
    assert dropped == {
        "pain_average_24h": "Not a whole number from 0 to 10.",
        "pain_now": "Not a whole number from 0 to 10.",
        "painkillers": 'Not a known painkiller kind, or "none" given with another.',
    }
    assert paged(paged_procedure.patient).code == "RF-01"


@pytest.mark.hazard("HAZ-41")
def test_a_questionnaire_response_whose_only_content_is_unreadable_is_still_refused(ehr, paged_procedure):
    body = questionnaire_response(
        paged_procedure.patient_id,
        {"linkId": "RF-01", "answer": [{"valueBoolean": False}]},
        {"linkId": "pain_average_24h", "answer": [{"valueString": "seven"}]},
    )

    response = post_fhir(ehr, body)

    assert response.status_code == 400
    assert "pain_average_24h" in response.content.decode()
    assert not SymptomReport.objects.exists()


@pytest.mark.hazard("HAZ-43")
def test_a_json_red_flag_for_a_deceased_status_patient_is_accepted_alerted_and_noted(ehr, paged_procedure):
    update_patient(patient=paged_procedure.patient, status=PatientStatus.DECEASED)

    response = ehr.post(REPORTS, {"patient": paged_procedure.patient_id, "red_flags": ["RF-04"]}, format="json")

    assert response.status_code == 201, response.content
    assert any("deceased" in words for words in response.json()["warnings"])
    alert = paged(paged_procedure.patient)
    assert "deceased" in AlertEvent.objects.get(alert=alert, kind=AlertEvent.Kind.NOTE).note


@pytest.mark.hazard("HAZ-43")
def test_a_questionnaire_response_red_flag_for_a_withdrawn_patient_is_accepted_and_alerted(ehr, paged_procedure):
    update_patient(patient=paged_procedure.patient, status=PatientStatus.WITHDRAWN)
    body = questionnaire_response(paged_procedure.patient_id, {"linkId": "RF-02", "answer": [{"valueBoolean": True}]})

    response = post_fhir(ehr, body)

    assert response.status_code == 201, response.content
    alert = paged(paged_procedure.patient)
    assert "withdrawn" in AlertEvent.objects.get(alert=alert, kind=AlertEvent.Kind.NOTE).note


@pytest.mark.hazard("HAZ-43")
def test_a_report_without_a_red_flag_for_a_withdrawn_patient_is_taken_with_a_warning_and_re_plans_nothing(
    ehr, paged_procedure
):
    update_patient(patient=paged_procedure.patient, status=PatientStatus.WITHDRAWN)
    checkpoints = sorted(paged_procedure.checkpoints.values_list("id", "state"))

    response = ehr.post(REPORTS, {"patient": paged_procedure.patient_id, "pain_now": 9}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["warnings"] == ["The patient's follow-up status is withdrawn; the report was still taken."]
    assert not Alert.objects.exists()
    assert sorted(paged_procedure.checkpoints.values_list("id", "state")) == checkpoints
