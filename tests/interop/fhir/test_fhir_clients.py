"""The FHIR facade driven by clients nobody here wrote, fhirpy and SMART's fhirclient (R4 models), over HTTP
against a live server: retried creates write nothing twice, versions guard updates, searches page and sync
incrementally, results are readable where `Location` points, and the EHR's own codes (SNOMED CT vertebrae, LOINC,
RxNorm in a contained Medication, its MRN system) come back as sent."""

import copy
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from fhirclient.models.bundle import Bundle as ClientBundle
from fhirclient.models.medicationrequest import MedicationRequest as ClientMedicationRequest
from fhirclient.models.observation import Observation as ClientObservation
from fhirclient.models.patient import Patient as ClientPatient
from fhirclient.models.procedure import Procedure as ClientProcedure
from fhirclient.server import FHIRServer
from fhirpy import SyncFHIRClient

from interop.fhir.codes import RXNORM, SNOMED
from patients.models import Checkpoint, CheckpointState, FhirResult, Patient, Procedure
from tests.builders import make_api_token

from .test_fhir import dxa_body, patient_body, procedure_body

SENDER_MRN_SYSTEM = patient_body()["identifier"][0]["system"]

pytestmark = pytest.mark.django_db(transaction=True)

FHIR_JSON = "application/fhir+json"


@pytest.fixture(autouse=True)
def _empty_throttle(fresh_throttle):
    """Each test starts with an empty request history."""


@pytest.fixture
def token(clinic):
    return make_api_token(clinics=[clinic], name="Live EHR")


@pytest.fixture
def fhirpy_client(live_server, token):
    return SyncFHIRClient(f"{live_server.url}/fhir", authorization=f"Bearer {token}")


@pytest.fixture
def smart(live_server, token):
    """SMART's fhirclient server object, authorised with the bearer token."""
    server = FHIRServer(None, base_uri=f"{live_server.url}/fhir/")
    server.session.headers["Authorization"] = f"Bearer {token}"
    yield server
    server.session.close()


def _without_type(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != "resourceType"}


def test_fhirpy_retries_create_nothing_twice_and_versions_guard_updates(fhirpy_client, smart):
    patient = fhirpy_client.resource("Patient", **_without_type(patient_body("LIVE-1")))
    patient.save()
    assert patient["meta"]["versionId"] == "1"
    # The MRN comes back under the EHR's own identifier system, also when searched by it.
    found_by_mrn = fhirpy_client.resources("Patient").search(identifier=f"{SENDER_MRN_SYSTEM}|LIVE-1").first()
    assert [(i["system"], i["value"]) for i in found_by_mrn["identifier"]] == [(SENDER_MRN_SYSTEM, "LIVE-1")]
    # get_or_create on an existing patient finds it (fhirpy sends the search with the POST).
    again = fhirpy_client.resource("Patient", **_without_type(patient_body("LIVE-1")))
    found, created = fhirpy_client.resources("Patient").search(identifier="LIVE-1").get_or_create(again)
    assert (found.id, created) == (patient.id, False)
    # A plain retry of the same create returns the stored patient.
    retry = fhirpy_client.resource("Patient", **_without_type(patient_body("LIVE-1")))
    retry.save()
    assert retry.id == patient.id and Patient.objects.filter(mrn="LIVE-1").count() == 1

    body = procedure_body(patient.id)
    procedure = fhirpy_client.resource("Procedure", **_without_type(body))
    procedure.save()
    planned = Checkpoint.objects.filter(procedure_id=procedure.id).count()
    assert planned > 0
    fhirpy_client.resource("Procedure", **_without_type(body)).save()  # the retry
    conditional = fhirpy_client.resource("Procedure", **_without_type(body))
    conditional.create(patient=patient.id, date=body["performedDateTime"], code="kyphoplasty")
    assert conditional.id == procedure.id
    assert Procedure.objects.filter(patient_id=patient.id).count() == 1
    assert Checkpoint.objects.filter(procedure__patient_id=patient.id).count() == planned

    patient["telecom"] = [{"system": "email", "value": "new@example.invalid"}]
    patient.save()
    assert patient["meta"]["versionId"] == "2"
    patient.refresh()  # If-None-Match with the current version: 304, the resource is kept
    assert patient["meta"]["versionId"] == "2"
    # An update made from version 1 is refused, and changes nothing.
    stale = copy.deepcopy(patient.serialize())
    stale["telecom"] = [{"system": "email", "value": "stale@example.invalid"}]
    url = f"{smart.base_uri}Patient/{patient.id}"
    refused = smart.session.put(url, json=stale, headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
    assert refused.status_code == 412 and refused.json()["resourceType"] == "OperationOutcome"
    assert Patient.objects.get(pk=patient.id).email == "new@example.invalid"
    current = smart.session.put(url, json=stale, headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"2"'})
    assert current.status_code == 200 and current.headers["ETag"] == 'W/"3"'
    # vread: each version stays readable.
    first = ClientPatient.read(f"{patient.id}/_history/1", smart)
    assert first.telecom[0].value == "ana@example.invalid" and first.meta.versionId == "1"


def test_search_pages_with_next_links_and_syncs_by_last_updated(fhirpy_client, smart):
    for n in range(3):
        fhirpy_client.resource("Patient", **_without_type(patient_body(f"PAGE-{n}"))).save()
    since = timezone.now()
    time.sleep(0.01)
    fhirpy_client.resource("Patient", **_without_type(patient_body("PAGE-3"))).save()

    everyone = fhirpy_client.resources("Patient").search(_lastUpdated="ge2000-01-01").limit(2)
    first_page = smart.request_json("Patient?_lastUpdated=ge2000-01-01&_count=2")
    assert first_page["total"] == 4 and len(first_page["entry"]) == 2
    assert "next" in {link["relation"] for link in first_page["link"]}
    assert sorted(p["identifier"][0]["value"] for p in everyone.fetch_all()) == [f"PAGE-{n}" for n in range(4)]
    # fhirclient follows the next links too.
    search = ClientPatient.where({"_lastUpdated": "ge2000-01-01", "_count": "3"})
    assert len(list(search.perform_resources_iter(smart))) == 4
    # Incremental sync: only what changed after `since`.
    changed = fhirpy_client.resources("Patient").search(_lastUpdated=f"gt{since.isoformat()}").fetch_all()
    assert [p["identifier"][0]["value"] for p in changed] == ["PAGE-3"]


def test_fhirclient_results_are_readable_and_a_retry_never_closes_a_later_checkpoint(smart):
    patient = ClientPatient(patient_body("RESULT-1"))
    patient_id = patient.create(smart)["id"]
    assert [(i.system, i.value) for i in ClientPatient.read(patient_id, smart).identifier] == [
        (SENDER_MRN_SYSTEM, "RESULT-1")
    ]
    # The levels coded as the EHR codes them: SNOMED CT T12 vertebra and body of the first lumbar vertebra.
    sites = [
        {"coding": [{"system": SNOMED, "code": "23215003", "display": "T12 vertebra"}]},
        {"coding": [{"system": SNOMED, "code": "61032001", "display": "Structure of body of first lumbar vertebra"}]},
    ]
    procedure_id = ClientProcedure(procedure_body(patient_id, bodySite=sites)).create(smart)["id"]
    procedure = ClientProcedure.read(procedure_id, smart)
    snomed = {(c.system, c.code) for site in procedure.bodySite for c in site.coding if c.system == SNOMED}
    assert snomed == {(SNOMED, "23215003"), (SNOMED, "66794005")}
    assert sorted(Procedure.objects.get(pk=procedure_id).levels.values_list("level", flat=True)) == ["L1", "T12"]

    dxa = dxa_body(patient_id, value=-2.6)
    created = smart.session.post(f"{smart.base_uri}Observation", json=dxa, headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201
    observation = ClientObservation.read(created.json()["id"], smart)
    assert created.headers["Location"].endswith(f"/Observation/{observation.id}/_history/1")
    assert (observation.code.coding[0].system, observation.code.coding[0].code) == ("http://loinc.org", "38267-1")
    assert observation.valueQuantity.value == -2.6

    # An RxNorm-only drug (alendronate sodium 70 mg oral tablet), in a contained Medication.
    started = (timezone.localdate() - timedelta(days=1)).isoformat()
    order = {
        "resourceType": "MedicationRequest",
        "contained": [
            {"resourceType": "Medication", "id": "rx", "code": {"coding": [{"system": RXNORM, "code": "904431"}]}}
        ],
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "#rx"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": started,
    }
    request = ClientMedicationRequest(order)
    request_id = request.create(smart)["id"]
    read = ClientMedicationRequest.read(request_id, smart)
    assert read.medicationReference.reference == "#rx"
    assert (read.contained[0].code.coding[0].system, read.contained[0].code.coding[0].code) == (RXNORM, "904431")
    cp07 = Checkpoint.objects.get(procedure_id=procedure_id, code="CP-07")
    assert (cp07.state, cp07.medication_drug) == (CheckpointState.COMPLETED, "alendronate sodium 70 mg oral tablet")
    cp13 = Checkpoint.objects.get(procedure_id=procedure_id, code="CP-13")
    assert cp13.state == CheckpointState.SCHEDULED

    # The DXA sent again: the stored result comes back, and the repeat scan due in a year stays open.
    retried = smart.session.post(f"{smart.base_uri}Observation", json=dxa, headers={"Content-Type": FHIR_JSON})
    assert retried.status_code == 200 and retried.json()["id"] == observation.id
    cp13.refresh_from_db()
    assert cp13.state == CheckpointState.SCHEDULED and cp13.dxa_t_score is None
    assert FhirResult.objects.filter(patient_id=patient_id).count() == 2

    bundle = ClientBundle(smart.request_json(f"Observation?patient={patient_id}"))
    assert [entry.resource.id for entry in bundle.entry] == [observation.id]
    orders = ClientMedicationRequest.where({"patient": patient_id}).perform_resources(smart)
    assert [order.id for order in orders] == [request_id]
