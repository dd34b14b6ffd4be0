"""FHIR conditional create (If-None-Exist), repeated creates, versions and the search parameters and formats
that incremental sync relies on (docs/fhir.md, "Retrying a create", "Versions", "Search")."""

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.procedure import Procedure as FhirProcedure
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from alerts.models import SymptomReport
from interop.fhir.codes import SYSTEM_VERTEBRA
from patients.models import Checkpoint, Procedure

from .test_fhir import FHIR, FHIR_JSON, outcome, parsed, patient_body, post, procedure_body, response_body

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_throttle(fresh_throttle):
    """Each test starts with an empty request history."""


@pytest.fixture
def ehr(make_token, bearer, clinic):
    return bearer(make_token(clinics=[clinic], name="FHIR EHR"))


@pytest.fixture
def patient_id(ehr):
    return parsed(post(ehr, "Patient", patient_body()), FhirPatient, 201)["id"]


def test_if_none_exist_answers_the_one_match_refuses_several_and_creates_otherwise(ehr, patient_id):
    body = procedure_body(patient_id)
    condition = f"patient={patient_id}&code=kyphoplasty"
    first = post(ehr, "Procedure", body, HTTP_IF_NONE_EXIST=condition)
    created = parsed(first, FhirProcedure, 201)
    planned = Checkpoint.objects.count()
    # Another body (another level), but the condition matches the stored procedure: nothing is written.
    other_level = procedure_body(patient_id, bodySite=[{"coding": [{"system": SYSTEM_VERTEBRA, "code": "L3"}]}])
    again = post(ehr, "Procedure", other_level, HTTP_IF_NONE_EXIST=condition)
    assert parsed(again, FhirProcedure, 200)["id"] == created["id"]
    assert again["Location"] == first["Location"]
    assert Procedure.objects.count() == 1 and Checkpoint.objects.count() == planned
    # Without the condition that body is another procedure; then the condition matches two.
    parsed(post(ehr, "Procedure", other_level), FhirProcedure, 201)
    outcome(post(ehr, "Procedure", body, HTTP_IF_NONE_EXIST=condition), 412)
    assert Procedure.objects.count() == 2


def test_a_repeated_questionnaire_response_is_evaluated_once(ehr, patient_id):
    parsed(post(ehr, "Procedure", procedure_body(patient_id)), FhirProcedure, 201)
    answers = response_body(int(patient_id), pain_now=6)
    first = parsed(post(ehr, "QuestionnaireResponse", answers), QuestionnaireResponse, 201)
    again = parsed(post(ehr, "QuestionnaireResponse", answers), QuestionnaireResponse, 200)
    assert again == first and SymptomReport.objects.count() == 1
    keyed = response_body(int(patient_id), pain_now=7)
    replies = [post(ehr, "QuestionnaireResponse", keyed, HTTP_IDEMPOTENCY_KEY="qr-7") for _ in range(2)]
    assert replies[1]["Idempotent-Replayed"] == "true" and SymptomReport.objects.count() == 2


def test_every_resource_carries_its_version_and_etag(ehr, patient_id):
    read = ehr.get(f"{FHIR}/Patient/{patient_id}")
    assert read["ETag"] == 'W/"1"' and parsed(read, FhirPatient)["meta"]["versionId"] == "1"
    assert ehr.get(f"{FHIR}/Patient/{patient_id}", HTTP_IF_NONE_MATCH='W/"1"').status_code == 304
    procedure = parsed(post(ehr, "Procedure", procedure_body(patient_id)), FhirProcedure, 201)
    tasks = parsed(ehr.get(f"{FHIR}/Task", {"for": f"Patient/{patient_id}"}), Bundle)
    assert tasks["total"] == Checkpoint.objects.filter(procedure_id=procedure["id"]).count() > 0
    assert all(entry["resource"]["meta"]["versionId"] for entry in tasks["entry"])
    task_id = tasks["entry"][0]["resource"]["id"]
    assert ehr.get(f"{FHIR}/Task/{task_id}/_history/1").status_code == 200
    outcome(ehr.get(f"{FHIR}/Task/{task_id}/_history/9"), 404)
    outcome(ehr.get(f"{FHIR}/Patient/{patient_id}/_history/2"), 404)


def test_search_by_id_paging_and_last_updated(ehr, patient_id):
    by_id = parsed(ehr.get(f"{FHIR}/Patient", {"_id": patient_id}), Bundle)
    assert [entry["resource"]["id"] for entry in by_id["entry"]] == [patient_id]
    parsed(post(ehr, "Procedure", procedure_body(patient_id)), FhirProcedure, 201)
    page = parsed(ehr.get(f"{FHIR}/Task", {"patient": patient_id, "_count": 5}), Bundle)
    assert len(page["entry"]) == 5 and page["total"] > 5
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    second = parsed(ehr.get(following), Bundle)
    assert {e["resource"]["id"] for e in second["entry"]}.isdisjoint({e["resource"]["id"] for e in page["entry"]})
    future = parsed(ehr.get(f"{FHIR}/Task", {"_lastUpdated": "gt2999-01-01"}), Bundle)
    assert future["total"] == 0
    outcome(ehr.get(f"{FHIR}/Task", {"_lastUpdated": "yesterday"}), 400)


def test_questionnaire_search_by_url(ehr):
    url = "https://kyphofollow.invalid/fhir/Questionnaire/kyphofollow-checkin"
    found = parsed(ehr.get(f"{FHIR}/Questionnaire", {"url": url}), Bundle)
    assert [entry["resource"]["id"] for entry in found["entry"]] == ["kyphofollow-checkin"]
    assert parsed(ehr.get(f"{FHIR}/Questionnaire", {"url": "https://example.org/other"}), Bundle)["total"] == 0


def test_format_parameter_and_the_dstu2_media_type(ehr, patient_id):
    legacy = ehr.get(f"{FHIR}/Patient/{patient_id}", HTTP_ACCEPT="application/json+fhir")
    assert legacy.status_code == 200 and legacy["Content-Type"].startswith(FHIR_JSON)
    plain = ehr.get(f"{FHIR}/Patient/{patient_id}", {"_format": "json"}, HTTP_ACCEPT=FHIR_JSON)
    assert plain["Content-Type"].startswith("application/json")
    assert ehr.get(f"{FHIR}/Patient/{patient_id}", {"_format": "xml"}).status_code == 406
    sent = ehr.post(f"{FHIR}/Patient", data=json.dumps(patient_body("LEGACY-1")), content_type="application/json+fhir")
    assert sent.status_code == 201
