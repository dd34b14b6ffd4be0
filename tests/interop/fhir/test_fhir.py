"""The FHIR R4 facade (interop/fhir/): every resource it returns parses back with fhir.resources R4B, and
every write goes through the same services as the JSON API."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.procedure import Procedure as FhirProcedure
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.task import Task

from alerts.models import Alert, SymptomReport
from alerts.rules import get_rules
from interop.fhir.codes import (
    EXT_EMAIL_CONSENT,
    EXT_FRACTURE_DIAGNOSED,
    SYSTEM_ANSWER,
    SYSTEM_PROCEDURE_KIND,
    SYSTEM_RULE,
    SYSTEM_VERTEBRA,
    TASK_STATUS,
)
from interop.fhir.questionnaire import findings_of
from patients.models import Checkpoint, CheckpointState, Patient, PatientStatus
from tests.builders import birth_date_for_age

pytestmark = pytest.mark.django_db

FHIR = "/fhir"
FHIR_JSON = "application/fhir+json"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


@pytest.fixture(autouse=True)
def _empty_throttle(fresh_throttle):
    """Each test starts with an empty request history (token ids restart with every test database)."""


@pytest.fixture
def fhir_client(make_token, bearer):
    """fhir_client(clinic, …, scopes=…) -> an APIClient with a bearer token for those clinics."""
    return lambda *clinics, scopes=("read", "write"): bearer(
        make_token(clinics=clinics, scopes=scopes, name="FHIR EHR")
    )


@pytest.fixture
def ehr(fhir_client, clinic):
    return fhir_client(clinic)


def post(client, path, body, **headers):
    return client.post(f"{FHIR}/{path}", data=json.dumps(body), content_type=FHIR_JSON, **headers)


def put(client, path, body):
    return client.put(f"{FHIR}/{path}", data=json.dumps(body), content_type=FHIR_JSON)


def parsed(response, model, status_code=200) -> dict:
    """The body, after checking the status, the media type and that it parses as `model`."""
    assert response.status_code == status_code, response.content
    assert response["Content-Type"].startswith(FHIR_JSON)
    body = response.json()
    model.model_validate(body)
    return body


def outcome(response, status_code) -> dict:
    body = parsed(response, OperationOutcome, status_code)
    assert body["resourceType"] == "OperationOutcome" and body["issue"]
    return body


def diagnostics(body) -> str:
    return " ".join(issue.get("diagnostics", "") for issue in body["issue"])


def patient_body(mrn="FHIR-1", **overrides):
    body = {
        "resourceType": "Patient",
        "identifier": [{"type": MR, "system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn}],
        "name": [{"use": "official", "family": "Example", "given": ["Ana", "Maria"]}],
        "birthDate": birth_date_for_age(75).isoformat(),
        "gender": "female",
        "telecom": [
            {"system": "email", "value": "ana@example.invalid"},
            {"system": "phone", "value": "+44 20 7946 0001"},
        ],
        "communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-GB"}]}, "preferred": True}
        ],
        "extension": [{"url": EXT_EMAIL_CONSENT, "valueBoolean": True}],
    }
    body.update(overrides)
    return body


def procedure_body(patient_id, **overrides):
    today = timezone.localdate()
    body = {
        "resourceType": "Procedure",
        "extension": [{"url": EXT_FRACTURE_DIAGNOSED, "valueDate": (today - timedelta(days=10)).isoformat()}],
        "status": "completed",
        "code": {"coding": [{"system": SYSTEM_PROCEDURE_KIND, "code": "kyphoplasty"}], "text": "kyphoplasty"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "performedDateTime": (today - timedelta(days=1)).isoformat(),
        "bodySite": [
            {"coding": [{"system": SYSTEM_VERTEBRA, "code": "T12"}]},
            {"coding": [{"system": SYSTEM_VERTEBRA, "code": "L1"}]},
        ],
    }
    body.update(overrides)
    return body


def response_body(patient_id, *, pain_now=5, yes=(), second_opinion=None, rules=None):
    rules = rules or get_rules(Patient.objects.get(pk=patient_id).clinic.protocol_version)
    items = [{"linkId": "pain_now", "answer": [{"valueInteger": pain_now}]}]
    items += [{"linkId": flag.id, "answer": [{"valueBoolean": flag.id in yes}]} for flag in rules.red_flags]
    items += [
        {"linkId": code, "answer": [{"valueCoding": {"system": SYSTEM_ANSWER, "code": answer}}]}
        for code, answer in (second_opinion or {}).items()
    ]
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://kyphofollow.invalid/fhir/Questionnaire/kyphofollow-checkin",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": timezone.now().isoformat(),
        "item": items,
    }


def dxa_body(patient_id, *, code="38267-1", value=-2.7, on=None):
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": (on or timezone.localdate() - timedelta(days=2)).isoformat(),
        "valueQuantity": {
            "value": value,
            "unit": "T-score",
            "system": "http://unitsofmeasure.org",
            "code": "{T-score}",
        },
    }


def medication_statement_body(patient_id, *, drug="alendronic acid 70 mg weekly", on=None, status="active"):
    return {
        "resourceType": "MedicationStatement",
        "status": status,
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "M05BA04", "display": "alendronic acid"}],
            "text": drug,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": (on or timezone.localdate() - timedelta(days=1)).isoformat(),
    }


@pytest.fixture
def treated(ehr):
    """A patient registered and treated over FHIR: (patient id, procedure id)."""
    patient = parsed(post(ehr, "Patient", patient_body()), FhirPatient, 201)
    procedure = parsed(post(ehr, "Procedure", procedure_body(patient["id"])), FhirProcedure, 201)
    return int(patient["id"]), int(procedure["id"])


# --- CapabilityStatement ------------------------------------------------------------------------


def test_metadata_needs_no_token_and_lists_every_resource_and_interaction(client):
    body = parsed(client.get(f"{FHIR}/metadata", HTTP_ACCEPT=FHIR_JSON), CapabilityStatement)
    resources = {entry["type"]: {i["code"] for i in entry["interaction"]} for entry in body["rest"][0]["resource"]}
    assert resources["Patient"] == {"read", "vread", "create", "update", "search-type"}
    assert {"read", "vread", "create"} <= resources["Procedure"]
    assert resources["Questionnaire"] == {"read", "search-type"}
    assert "create" in resources["QuestionnaireResponse"]
    assert "search-type" in resources["Task"] and "search-type" in resources["Flag"]
    results = {"read", "vread", "create", "search-type"}
    assert resources["Observation"] == resources["MedicationStatement"] == resources["MedicationRequest"] == results
    assert "application/fhir+json" in body["format"]
    assert body["fhirVersion"] == "4.0.1"
    for entry in body["rest"][0]["resource"]:
        assert entry["versioning"] == "versioned"
        assert all(param["definition"].startswith("http") for param in entry["searchParam"])


def test_an_unknown_path_is_a_404_operation_outcome(ehr):
    outcome(ehr.get(f"{FHIR}/Encounter/1"), 404)


# --- Patient ------------------------------------------------------------------------------------


def test_a_patient_is_created_read_and_updated_through_the_registry_services(ehr, clinic):
    response = post(ehr, "Patient", patient_body())
    created = parsed(response, FhirPatient, 201)
    assert response["Location"].endswith(f"/fhir/Patient/{created['id']}/_history/1")
    patient = Patient.objects.get(pk=created["id"])
    assert (patient.clinic, patient.mrn, patient.given_name, patient.family_name) == (
        clinic,
        "FHIR-1",
        "Ana Maria",
        "Example",
    )
    assert (patient.sex, patient.email, patient.phone, patient.language) == (
        "female",
        "ana@example.invalid",
        "+442079460001",
        "en",
    )
    assert patient.time_zone == clinic.time_zone and patient.email_consent is True

    read = parsed(ehr.get(f"{FHIR}/Patient/{patient.pk}"), FhirPatient)
    assert read["identifier"][0]["value"] == "FHIR-1" and read["birthDate"] == patient.birth_date.isoformat()
    assert read["managingOrganization"]["reference"] == f"Organization/{clinic.slug}"

    changed = patient_body(
        id=str(patient.pk), active=False, telecom=[{"system": "email", "value": "new@example.invalid"}]
    )
    updated = parsed(put(ehr, f"Patient/{patient.pk}", changed), FhirPatient)
    patient.refresh_from_db()
    assert (patient.email, patient.phone, patient.status) == ("new@example.invalid", "", PatientStatus.WITHDRAWN)
    assert updated["active"] is False

    found = parsed(ehr.get(f"{FHIR}/Patient", {"identifier": "urn:oid:2.16.840.1.113883.19.5|FHIR-1"}), Bundle)
    assert [entry["resource"]["id"] for entry in found["entry"]] == [str(patient.pk)]

    mismatch = outcome(put(ehr, f"Patient/{patient.pk}", patient_body(id="999")), 400)
    assert mismatch["issue"][0]["expression"] == ["Patient.id"]


def test_a_client_of_several_clinics_names_the_clinic_as_managing_organization(fhir_client, clinic, other_clinic):
    ehr = fhir_client(clinic, other_clinic)
    refused = outcome(post(ehr, "Patient", patient_body()), 400)
    assert refused["issue"][0]["expression"] == ["Patient.managingOrganization"]
    body = patient_body(managingOrganization={"reference": f"Organization/{other_clinic.slug}"})
    created = parsed(post(ehr, "Patient", body), FhirPatient, 201)
    assert Patient.objects.get(pk=created["id"]).clinic == other_clinic


def test_a_registry_rule_broken_is_a_400_naming_the_element(ehr):
    too_young = patient_body(birthDate=birth_date_for_age(30).isoformat())
    body = outcome(post(ehr, "Patient", too_young), 400)
    assert body["issue"][0]["expression"] == ["Patient.birthDate"] and "40 and 110" in diagnostics(body)
    first = parsed(post(ehr, "Patient", patient_body()), FhirPatient, 201)
    # The same MRN twice in one clinic: the same patient (same birth date) is the one already registered,
    # another birth date is a registry error.
    assert parsed(post(ehr, "Patient", patient_body()), FhirPatient, 200)["id"] == first["id"]
    other = patient_body(birthDate=birth_date_for_age(80).isoformat())
    outcome(post(ehr, "Patient", other), 400)


# --- Procedure ----------------------------------------------------------------------------------


def test_a_procedure_is_recorded_with_its_levels_and_plans_the_schedule(ehr, treated):
    patient_id, procedure_id = treated
    read = parsed(ehr.get(f"{FHIR}/Procedure/{procedure_id}"), FhirProcedure)
    assert read["code"]["coding"][0] == {
        "system": SYSTEM_PROCEDURE_KIND,
        "code": "kyphoplasty",
        "display": "Kyphoplasty",
    }
    assert [site["coding"][0]["code"] for site in read["bodySite"]] == ["L1", "T12"]
    assert read["subject"]["reference"] == f"Patient/{patient_id}"
    assert read["performedDateTime"] == (timezone.localdate() - timedelta(days=1)).isoformat()
    codes = set(Checkpoint.objects.filter(procedure_id=procedure_id).values_list("code", flat=True))
    assert {"CP-01", "CP-06", "CP-07", "CP-12"} <= codes
    search = parsed(ehr.get(f"{FHIR}/Procedure", {"patient": f"Patient/{patient_id}"}), Bundle)
    assert [entry["resource"]["id"] for entry in search["entry"]] == [str(procedure_id)]


def test_a_procedure_named_by_text_only_and_a_bad_level(ehr, treated):
    patient_id, _ = treated
    by_text = procedure_body(patient_id, code={"text": "Balloon vertebroplasty"})
    created = parsed(post(ehr, "Procedure", by_text), FhirProcedure, 201)
    assert created["code"]["coding"][0]["code"] == "vertebroplasty"
    bad_level = procedure_body(patient_id, bodySite=[{"coding": [{"system": SYSTEM_VERTEBRA, "code": "C5"}]}])
    body = outcome(post(ehr, "Procedure", bad_level), 400)
    assert body["issue"][0]["expression"] == ["Procedure.bodySite[0]"]


# --- Questionnaire and QuestionnaireResponse ----------------------------------------------------


def test_the_questionnaire_is_built_from_the_rules_in_force(ehr, clinic):
    body = parsed(ehr.get(f"{FHIR}/Questionnaire/kyphofollow-checkin"), Questionnaire)
    rules = get_rules(clinic.protocol_version)
    assert body["version"] == rules.version
    coded = {(code["system"], code["code"]): item["linkId"] for item in body["item"] for code in item.get("code", [])}
    for code in [f"RF-{n:02d}" for n in range(1, 11)] + ["SO-2", "SO-4"]:
        assert coded[(SYSTEM_RULE, code)] == code
    assert coded[("http://loinc.org", "72514-3")] == "pain_now"
    rf01 = next(item for item in body["item"] if item["linkId"] == "RF-01")
    assert rf01["type"] == "boolean" and rf01["text"] == rules.red_flag("RF-01").question
    outcome(ehr.get(f"{FHIR}/Questionnaire/other"), 404)


@pytest.mark.parametrize(
    ("pain_now", "yes", "second_opinion"),
    [(5, ["RF-01"], {}), (6, ["RF-06", "RF-08"], {"SO-2": "no", "SO-4": "yes"}), (2, [], {})],
    ids=["RF-01", "urgent-and-second-opinion", "nothing"],
)
def test_a_questionnaire_response_gives_the_same_findings_as_the_json_api(
    ehr, make_procedure, pain_now, yes, second_opinion
):
    by_fhir, by_json = make_procedure(), make_procedure()
    response = post(
        ehr,
        "QuestionnaireResponse",
        response_body(by_fhir.patient_id, pain_now=pain_now, yes=yes, second_opinion=second_opinion),
    )
    stored = parsed(response, QuestionnaireResponse, 201)
    json_api = ehr.post(
        "/api/v1/symptom-reports/",
        {"patient": by_json.patient_id, "pain_now": pain_now, "red_flags": yes, "second_opinion": second_opinion},
        format="json",
    )
    assert json_api.status_code == 201, json_api.content

    keys = ("code", "tier", "kind", "action", "source")
    expected = [{key: finding[key] for key in keys} for finding in json_api.json()["findings"]]
    assert findings_of(stored) == expected
    if "RF-01" in yes:
        assert [(f["code"], f["tier"]) for f in expected] == [("RF-01", "emergency")]
    report = SymptomReport.objects.get(pk=stored["id"])
    assert report.source == "fhir" and report.red_flags == sorted(yes) and report.second_opinion == second_opinion
    read = parsed(ehr.get(f"{FHIR}/QuestionnaireResponse/{report.pk}"), QuestionnaireResponse)
    assert findings_of(read) == expected
    answers = {item["linkId"]: item["answer"][0] for item in read["item"]}
    assert answers["pain_now"] == {"valueInteger": pain_now}
    assert all(answers[f"RF-{n:02d}"] == {"valueBoolean": f"RF-{n:02d}" in yes} for n in range(1, 11))


def test_a_questionnaire_response_with_an_unknown_or_mistyped_answer_is_refused(ehr, make_procedure):
    procedure = make_procedure()
    unknown = response_body(procedure.patient_id, yes=["RF-01"])
    unknown["item"].append({"linkId": "RF-11", "answer": [{"valueBoolean": True}]})
    body = outcome(post(ehr, "QuestionnaireResponse", unknown), 400)
    assert "RF-11" in diagnostics(body)
    wrong_type = response_body(procedure.patient_id)
    wrong_type["item"][1]["answer"] = [{"valueString": "yes"}]
    outcome(post(ehr, "QuestionnaireResponse", wrong_type), 400)
    assert not SymptomReport.objects.exists()
    no_pain = response_body(procedure.patient_id)  # capture first (#13): red flags without a pain score are taken
    no_pain["item"] = no_pain["item"][1:]
    parsed(post(ehr, "QuestionnaireResponse", no_pain), QuestionnaireResponse, 201)
    assert "pain_now" in SymptomReport.objects.get().unanswered


# --- Task and Flag ------------------------------------------------------------------------------


def test_checkpoints_are_searched_as_tasks_with_their_window_and_status(ehr, treated):
    patient_id, procedure_id = treated
    rows = {row.code: row for row in Checkpoint.objects.filter(procedure_id=procedure_id, sequence=1)}
    Checkpoint.objects.filter(pk=rows["CP-01"].pk).update(state=CheckpointState.DUE)
    Checkpoint.objects.filter(pk=rows["CP-02"].pk).update(state=CheckpointState.MISSED)
    bundle = parsed(ehr.get(f"{FHIR}/Task", {"patient": patient_id}), Bundle)
    assert bundle["total"] == Checkpoint.objects.filter(procedure_id=procedure_id).count()
    tasks = {}
    for entry in bundle["entry"]:
        Task.model_validate(entry["resource"])
        tasks.setdefault(entry["resource"]["code"]["coding"][0]["code"], entry["resource"])
    for code, row in rows.items():
        row.refresh_from_db()
        task = tasks[code]
        assert task["status"] == TASK_STATUS[row.state]
        assert task["restriction"]["period"] == {
            "start": row.window_start.isoformat(),
            "end": row.window_end.isoformat(),
        }
        assert task["for"] == {"reference": f"Patient/{patient_id}"}
    assert (tasks["CP-01"]["status"], tasks["CP-02"]["status"], tasks["CP-06"]["status"]) == (
        "ready",
        "failed",
        "requested",
    )
    only = parsed(ehr.get(f"{FHIR}/Task", {"patient": patient_id, "code": "CP-07"}), Bundle)
    assert [entry["resource"]["code"]["coding"][0]["code"] for entry in only["entry"]] == ["CP-07"]
    parsed(ehr.get(f"{FHIR}/Task/{rows['CP-07'].pk}"), Task)
    body = outcome(ehr.get(f"{FHIR}/Task"), 400)
    assert "patient" in diagnostics(body)


def test_open_alerts_are_flags(ehr, treated):
    patient_id, _ = treated
    parsed(
        post(ehr, "QuestionnaireResponse", response_body(patient_id, yes=["RF-01", "RF-06"])),
        QuestionnaireResponse,
        201,
    )
    bundle = parsed(ehr.get(f"{FHIR}/Flag", {"patient": patient_id}), Bundle)
    flags = {entry["resource"]["code"]["coding"][0]["code"]: entry["resource"] for entry in bundle["entry"]}
    assert set(flags) == {"RF-01", "RF-06"}
    rf01 = flags["RF-01"]
    Flag.model_validate(rf01)
    alert = Alert.objects.get(patient_id=patient_id, code="RF-01")
    assert rf01["status"] == "active" and rf01["code"]["coding"][0]["system"] == SYSTEM_RULE
    assert {"system": "https://kyphofollow.invalid/tier", "code": "emergency", "display": "Emergency"} in [
        coding for category in rf01["category"] for coding in category["coding"]
    ]
    assert rf01["period"]["start"] == parsed(ehr.get(f"{FHIR}/Flag/{alert.pk}"), Flag)["period"]["start"]
    Alert.objects.filter(pk=alert.pk).update(state="resolved", resolved_at=timezone.now())
    still = parsed(ehr.get(f"{FHIR}/Flag", {"patient": patient_id}), Bundle)
    assert [entry["resource"]["code"]["coding"][0]["code"] for entry in still["entry"]] == ["RF-06"]


# --- DXA and osteoporosis medication ------------------------------------------------------------


def _cancelled(procedure_id) -> set[int]:
    return set(
        Checkpoint.objects.filter(procedure_id=procedure_id, state=CheckpointState.CANCELLED).values_list(
            "id", flat=True
        )
    )


def test_a_dxa_observation_completes_cp06_and_updates_the_lowest_t_score(ehr, treated):
    patient_id, procedure_id = treated
    cp06 = Checkpoint.objects.get(procedure_id=procedure_id, code="CP-06")
    cancelled = _cancelled(procedure_id)
    measured_on = timezone.localdate() - timedelta(days=2)
    response = post(ehr, "Observation", dxa_body(patient_id, value=-2.7, on=measured_on))
    body = parsed(response, Observation, 201)
    assert response["Location"].endswith(f"/fhir/Observation/{body['id']}/_history/1")
    assert parsed(ehr.get(f"{FHIR}/Observation/{body['id']}"), Observation) == body
    cp06.refresh_from_db()
    assert cp06.state == CheckpointState.COMPLETED
    assert (str(cp06.dxa_t_score), cp06.dxa_date) == ("-2.7", measured_on)
    patient = Patient.objects.get(pk=patient_id)
    assert (str(patient.bmd_lowest_t_score), patient.dxa_date) == ("-2.7", measured_on)
    assert _cancelled(procedure_id) == cancelled
    assert body["valueQuantity"]["value"] == -2.7
    task = parsed(ehr.get(f"{FHIR}/Task/{cp06.pk}"), Task)
    assert task["status"] == "completed"
    assert {"dxa_t_score": -2.7, "dxa_date": measured_on.isoformat()} == {
        output["type"]["text"]: output.get("valueDecimal", output.get("valueDate")) for output in task["output"]
    }
    # Nothing open any more: a later scan completes nothing, but is a tier input all the same: kept in
    # the history, and the most recent scan is what the patient's record shows.
    later = parsed(
        post(ehr, "Observation", dxa_body(patient_id, value=-3.0, on=measured_on + timedelta(days=1))), Observation, 201
    )
    assert "extension" not in later
    patient = Patient.objects.get(pk=patient_id)
    assert (str(patient.bmd_lowest_t_score), patient.dxa_date) == ("-3.0", measured_on + timedelta(days=1))
    assert [str(row.lowest_t_score) for row in patient.dxa_results.order_by("measured_on")] == ["-2.7", "-3.0"]
    assert parsed(ehr.get(f"{FHIR}/Observation/{later['id']}"), Observation) == later


@pytest.mark.parametrize(
    ("change", "path", "status_code"),
    [
        ({"code": {"coding": [{"system": "http://loinc.org", "code": "38263-7"}]}}, "Observation.code", 422),
        ({"code": {"text": "DXA"}}, "Observation.code", 400),
        ({"valueQuantity": {"value": 0.82, "unit": "g/cm2", "code": "g/cm2"}}, "Observation.valueQuantity", 400),
        ({"valueQuantity": {"value": -7.5}}, "Observation.valueQuantity.value", 400),
        ({"status": "preliminary"}, "Observation.status", 400),
        ({"effectiveDateTime": "2025-06"}, "Observation.effectiveDateTime", 400),
    ],
    ids=["not-a-t-score-code", "no-code", "bmd-not-t-score", "out-of-range", "preliminary", "partial-date"],
)
def test_a_dxa_observation_that_cannot_complete_cp06_is_refused(ehr, treated, change, path, status_code):
    patient_id, procedure_id = treated
    body = outcome(post(ehr, "Observation", {**dxa_body(patient_id), **change}), status_code)
    assert path in body["issue"][0].get("expression", [])
    assert Checkpoint.objects.get(procedure_id=procedure_id, code="CP-06").state == CheckpointState.SCHEDULED


def test_a_medication_statement_completes_cp07_and_plans_the_repeat_dxa(ehr, treated):
    patient_id, procedure_id = treated
    assert not Checkpoint.objects.filter(procedure_id=procedure_id, code="CP-13").exists()
    cancelled = _cancelled(procedure_id)
    started_on = timezone.localdate() - timedelta(days=1)
    response = post(ehr, "MedicationStatement", medication_statement_body(patient_id, on=started_on))
    statement = parsed(response, MedicationStatement, 201)
    cp07 = Checkpoint.objects.get(procedure_id=procedure_id, code="CP-07")
    assert response["Location"].endswith(f"/fhir/MedicationStatement/{statement['id']}/_history/1")
    assert {"reference": f"Task/{cp07.pk}", "display": "CP-07"} in [
        ext.get("valueReference") for ext in statement["extension"]
    ]
    assert cp07.state == CheckpointState.COMPLETED
    assert (cp07.medication_started, cp07.medication_drug, cp07.medication_started_on) == (
        True,
        "alendronic acid 70 mg weekly",
        started_on,
    )
    patient = Patient.objects.get(pk=patient_id)
    assert (patient.on_osteoporosis_med, patient.osteoporosis_med_started_on) == (True, started_on)
    cp13 = Checkpoint.objects.get(procedure_id=procedure_id, code="CP-13")
    assert cp13.window_start == started_on + timedelta(days=365) and cp13.state == CheckpointState.SCHEDULED
    assert _cancelled(procedure_id) == cancelled
    # A DXA result completes the open CP-06 first; only then does one complete the repeat DXA, CP-13.
    parsed(post(ehr, "Observation", dxa_body(patient_id)), Observation, 201)
    assert Checkpoint.objects.get(procedure_id=procedure_id, code="CP-06").state == CheckpointState.COMPLETED
    cp13.refresh_from_db()
    assert cp13.state == CheckpointState.SCHEDULED
    # An older result never closes the repeat scan due in a year: CP-13 stays open, and the result is
    # kept as history without changing the most recent scan the patient's record shows.
    before = Patient.objects.values_list("bmd_lowest_t_score", "dxa_date").get(pk=patient_id)
    older = timezone.localdate() - timedelta(days=30)
    parsed(post(ehr, "Observation", dxa_body(patient_id, code="38264-8", value=-2.1, on=older)), Observation, 201)
    cp13.refresh_from_db()
    assert cp13.state == CheckpointState.SCHEDULED and cp13.dxa_t_score is None
    assert Patient.objects.values_list("bmd_lowest_t_score", "dxa_date").get(pk=patient_id) == before
    assert Patient.objects.get(pk=patient_id).dxa_results.filter(measured_on=older).exists()


def test_a_medication_request_completes_cp07_but_another_drug_leaves_it_open(ehr, treated):
    patient_id, procedure_id = treated
    paracetamol = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "paracetamol 1 g"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": timezone.localdate().isoformat(),
    }
    outcome(post(ehr, "MedicationRequest", paracetamol), 422)
    assert Checkpoint.objects.get(procedure_id=procedure_id, code="CP-07").state == CheckpointState.SCHEDULED
    denosumab = {**paracetamol, "medicationCodeableConcept": {"text": "Denosumab 60 mg every 6 months"}}
    parsed(post(ehr, "MedicationRequest", denosumab), MedicationRequest, 201)
    cp07 = Checkpoint.objects.get(procedure_id=procedure_id, code="CP-07")
    assert (cp07.state, cp07.medication_drug) == (CheckpointState.COMPLETED, "Denosumab 60 mg every 6 months")


def test_a_not_taken_statement_records_the_reason(ehr, treated):
    patient_id, procedure_id = treated
    body = medication_statement_body(patient_id, status="not-taken")
    outcome(post(ehr, "MedicationStatement", body), 400)  # no reason given
    body["statusReason"] = [{"text": "eGFR below 30"}]
    parsed(post(ehr, "MedicationStatement", body), MedicationStatement, 201)
    cp07 = Checkpoint.objects.get(procedure_id=procedure_id, code="CP-07")
    assert (cp07.state, cp07.medication_started) == (CheckpointState.COMPLETED, False)
    assert "eGFR below 30" in cp07.medication_not_started_reason
    assert not Checkpoint.objects.filter(procedure_id=procedure_id, code="CP-13").exists()


# --- Auth, scopes and clinic isolation ----------------------------------------------------------


def test_another_clinics_token_gets_404_on_reads_and_finds_nothing(ehr, fhir_client, other_clinic, treated):
    patient_id, procedure_id = treated
    parsed(post(ehr, "QuestionnaireResponse", response_body(patient_id, yes=["RF-01"])), QuestionnaireResponse, 201)
    report, alert = SymptomReport.objects.get(), Alert.objects.get()
    task = Checkpoint.objects.filter(procedure_id=procedure_id).first()
    outsider = fhir_client(other_clinic)
    for path in (
        f"Patient/{patient_id}",
        f"Procedure/{procedure_id}",
        f"QuestionnaireResponse/{report.pk}",
        f"Task/{task.pk}",
        f"Flag/{alert.pk}",
    ):
        outcome(outsider.get(f"{FHIR}/{path}"), 404)
    for path, params in (
        ("Task", {"patient": patient_id}),
        ("Flag", {"patient": patient_id}),
        ("Procedure", {"patient": patient_id}),
        ("QuestionnaireResponse", {"patient": patient_id}),
        ("Patient", {"identifier": "FHIR-1"}),
    ):
        bundle = parsed(outsider.get(f"{FHIR}/{path}", params), Bundle)
        assert bundle["total"] == 0 and "entry" not in bundle
    outcome(put(outsider, f"Patient/{patient_id}", patient_body(id=str(patient_id))), 404)
    outcome(post(outsider, "QuestionnaireResponse", response_body(patient_id, yes=["RF-02"])), 400)
    outcome(post(outsider, "Observation", dxa_body(patient_id)), 400)
    assert SymptomReport.objects.count() == 1


def test_a_read_only_token_gets_403_on_every_write(fhir_client, clinic, treated):
    patient_id, _ = treated
    reader = fhir_client(clinic, scopes=["read"])
    parsed(reader.get(f"{FHIR}/Patient/{patient_id}"), FhirPatient)
    for path, body in (
        ("Patient", patient_body("FHIR-2")),
        ("Procedure", procedure_body(patient_id)),
        ("QuestionnaireResponse", response_body(patient_id, yes=["RF-01"])),
        ("Observation", dxa_body(patient_id)),
        ("MedicationStatement", medication_statement_body(patient_id)),
    ):
        body = outcome(post(reader, path, body), 403)
        assert body["issue"][0]["code"] == "forbidden" and "write" in diagnostics(body)
    outcome(put(reader, f"Patient/{patient_id}", patient_body(id=str(patient_id))), 403)
    assert not SymptomReport.objects.exists()


def test_no_token_or_a_bad_token_is_401(client, treated):
    patient_id, _ = treated
    response = client.get(f"{FHIR}/Patient/{patient_id}")
    assert outcome(response, 401)["issue"][0]["code"] == "login"
    assert response["WWW-Authenticate"] == "Bearer"
    outcome(client.get(f"{FHIR}/Patient/{patient_id}", HTTP_AUTHORIZATION="Bearer kf_nope"), 401)


# --- Invalid resources --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "expression"),
    [
        ("Patient", {**patient_body(), "birthDate": "1950-13-45"}, "Patient.birthDate"),
        ("Patient", {**patient_body(), "favouriteColour": "blue"}, "Patient.favouriteColour"),
        ("Patient", {**patient_body(), "gender": "robot"}, "Patient.gender"),
        ("Patient", {**patient_body(), "name": [{"given": "Ana"}]}, "Patient.name[0].given"),
        ("Patient", {**patient_body(), "resourceType": "Observation"}, "resourceType"),
        ("Patient", {**patient_body(), "identifier": [{"value": "X"}]}, "Patient.identifier"),
        ("Procedure", {"resourceType": "Procedure", "subject": {"reference": "Patient/1"}}, "Procedure.status"),
        ("QuestionnaireResponse", {"resourceType": "QuestionnaireResponse", "status": "completed"}, None),
        ("Observation", [1, 2, 3], None),
    ],
    ids=[
        "bad-date",
        "unknown-element",
        "unknown-gender",
        "given-not-a-list",
        "wrong-type",
        "mrn-no-system",
        "no-status",
        "no-subject",
        "not-an-object",
    ],
)
def test_an_invalid_resource_is_a_400_operation_outcome(ehr, path, body, expression):
    body = outcome(post(ehr, path, body), 400)
    if expression:
        assert expression in [e for issue in body["issue"] for e in issue.get("expression", [])], body
    assert not Patient.objects.filter(mrn="FHIR-1").exists()


def test_malformed_json_and_an_unsupported_media_type(ehr):
    outcome(ehr.post(f"{FHIR}/Patient", data="{not json", content_type=FHIR_JSON), 400)
    outcome(ehr.post(f"{FHIR}/Patient", data="<Patient/>", content_type="application/fhir+xml"), 415)
    plain = ehr.post(f"{FHIR}/Patient", data=json.dumps(patient_body()), content_type="application/json")
    parsed(plain, FhirPatient, 201)


def test_a_retried_create_with_the_same_idempotency_key_is_replayed(ehr):
    first = post(ehr, "Patient", patient_body(), HTTP_IDEMPOTENCY_KEY="fhir-patient-1")
    again = post(ehr, "Patient", patient_body(), HTTP_IDEMPOTENCY_KEY="fhir-patient-1")
    assert parsed(first, FhirPatient, 201) == parsed(again, FhirPatient, 201)
    assert again["Idempotent-Replayed"] == "true" and Patient.objects.count() == 1


def test_odd_resources_are_refused_with_an_operation_outcome_never_a_500(ehr, treated):
    patient_id, procedure_id = treated
    subject = {"reference": f"Patient/{patient_id}"}
    odd = [
        ("Patient", {**patient_body(), "name": [{}]}),
        ("Patient", {**patient_body(), "telecom": [{"system": "email"}]}),
        (
            "Patient",
            {
                **patient_body(),
                "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": "Mars/Olympus"}],
            },
        ),
        ("Patient", {**patient_body(), "communication": [{"language": {"text": "English"}}]}),
        ("Patient", {**patient_body(), "communication": [{"language": {"coding": [{"code": "de"}]}}]}),
        ("Patient", {**patient_body(), "birthDate": (timezone.localdate() + timedelta(days=3)).isoformat()}),
        ("Patient", {**patient_body(), "managingOrganization": {"reference": "Organization/southside"}}),
        ("Patient", {**patient_body(), "identifier": []}),
        ("Patient", {"resourceType": "Patient"}),
        ("Patient", {}),
        ("Procedure", procedure_body(patient_id, subject={"reference": "Patient/abc"})),
        ("Procedure", procedure_body(patient_id, subject={"reference": "Patient/999999"})),
        ("Procedure", procedure_body(patient_id, performedDateTime="2025")),
        ("Procedure", procedure_body(patient_id, bodySite=[])),
        ("Procedure", procedure_body(patient_id, bodySite=[{"text": "L1"}])),
        ("Procedure", procedure_body(patient_id, code={"text": "kyphoplasty or vertebroplasty"})),
        ("Procedure", procedure_body(patient_id, status="in-progress")),
        (
            "Procedure",
            procedure_body(patient_id, performedDateTime=(timezone.localdate() + timedelta(days=5)).isoformat()),
        ),
        ("QuestionnaireResponse", {**response_body(patient_id), "status": "in-progress"}),
        ("QuestionnaireResponse", {**response_body(patient_id), "questionnaire": "http://example.org/Questionnaire/x"}),
        ("QuestionnaireResponse", {**response_body(patient_id), "authored": "2020-01-01"}),
        ("QuestionnaireResponse", {**response_body(patient_id), "authored": "2099-01-01T00:00:00Z"}),
        ("QuestionnaireResponse", {**response_body(patient_id), "partOf": [{"reference": "Procedure/999999"}]}),
        (
            "QuestionnaireResponse",
            {**response_body(patient_id), "item": [{"linkId": "pain_now", "answer": [{"valueInteger": 11}]}]},
        ),
        (
            "QuestionnaireResponse",
            {
                **response_body(patient_id),
                "item": [{"linkId": "pain_now", "answer": [{"valueInteger": 3}, {"valueInteger": 4}]}],
            },
        ),
        (
            "QuestionnaireResponse",
            {**response_body(patient_id), "item": [{"linkId": "SO-2", "answer": [{"valueCoding": {"code": "maybe"}}]}]},
        ),
        (
            "QuestionnaireResponse",
            {
                **response_body(patient_id),
                "item": [
                    {"linkId": "pain_now", "answer": [{"valueInteger": 3}]},
                    {"linkId": "pain_now", "answer": [{"valueInteger": 3}]},
                ],
            },
        ),
        ("Observation", {**dxa_body(patient_id), "valueQuantity": {"value": -2.75}}),
        ("Observation", {**dxa_body(patient_id), "valueQuantity": {"unit": "T-score"}}),
        ("Observation", {**dxa_body(patient_id), "effectiveDateTime": None}),
        (
            "Observation",
            {**dxa_body(patient_id), "effectiveDateTime": (timezone.localdate() + timedelta(days=2)).isoformat()},
        ),
        ("Observation", {**dxa_body(patient_id), "subject": {"display": "Ana"}}),
        (
            "MedicationStatement",
            {
                **medication_statement_body(patient_id),
                "medicationCodeableConcept": None,
                "medicationReference": {"reference": "Medication/1"},
            },
        ),
        ("MedicationStatement", {**medication_statement_body(patient_id), "effectiveDateTime": None}),
        ("MedicationStatement", {**medication_statement_body(patient_id), "status": "intended"}),
        (
            "MedicationStatement",
            {
                **medication_statement_body(patient_id),
                "medicationCodeableConcept": {"text": "x" * 150 + " alendronate"},
            },
        ),
        (
            "MedicationRequest",
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "proposal",
                "subject": subject,
                "medicationCodeableConcept": {"text": "alendronate"},
            },
        ),
        (
            "MedicationRequest",
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "subject": subject,
                "medicationCodeableConcept": {"text": "alendronate"},
            },
        ),
    ]
    for path, body in odd:
        body = {key: value for key, value in body.items() if value is not None} if isinstance(body, dict) else body
        response = post(ehr, path, body)
        assert response.status_code in {400, 404, 422}, (path, body, response.content)
        outcome(response, response.status_code)
    assert not SymptomReport.objects.exists()
    assert not Checkpoint.objects.filter(procedure_id=procedure_id, state=CheckpointState.COMPLETED).exists()
