"""The codes EHRs send (docs/fhir.md, "Codes EHRs send"): SNOMED CT vertebrae on Procedure.bodySite, RxNorm, ATC
and SNOMED CT osteoporosis medicines (interop/fhir/native_codes.toml, each entry with its source),
medicationReference to a contained Medication, the sender's MRN system kept, and an unknown code refused with a
422 that names it and the accepted systems."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.procedure import Procedure as FhirProcedure

from interop.fhir.codes import (
    ATC,
    NATIVE_CODES_FILE,
    RXNORM,
    SNOMED,
    SYSTEM_VERTEBRA,
    VERTEBRA_CODES,
    _native_codes,
)
from patients.models import Checkpoint, CheckpointState, FhirResult, Patient, Procedure
from patients.models.procedure import VERTEBRAE
from tests.builders import birth_date_for_age

from .test_fhir import FHIR, diagnostics, outcome, parsed, patient_body, post, procedure_body, put

pytestmark = pytest.mark.django_db

SENDER_MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"


@pytest.fixture(autouse=True)
def _empty_throttle(fresh_throttle):
    """Each test starts with an empty request history."""


@pytest.fixture
def ehr(make_token, bearer, clinic):
    return bearer(make_token(clinics=[clinic], scopes=("read", "write"), name="Coding EHR"))


@pytest.fixture
def treated(ehr):
    patient = parsed(post(ehr, "Patient", patient_body()), FhirPatient, 201)
    procedure = parsed(post(ehr, "Procedure", procedure_body(patient["id"])), FhirProcedure, 201)
    return int(patient["id"]), int(procedure["id"])


def _verhoeff_valid(number: str) -> bool:
    """SNOMED CT identifiers end in a Verhoeff check digit."""
    d = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ]
    p = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ]
    check = 0
    for index, digit in enumerate(reversed(number)):
        check = d[check][p[index % 8][int(digit)]]
    return check == 0


# --- The code table -----------------------------------------------------------------------------


@pytest.mark.hazard("HAZ-50")
def test_every_native_code_has_a_source_and_every_snomed_id_a_valid_check_digit():
    tables = _native_codes()
    entries = tables["vertebra"] + tables["medication"]
    assert all(entry["source"].strip() and entry["display"].strip() for entry in entries)
    snomed = [entry["code"] for entry in entries if entry["system"] == SNOMED]
    assert snomed and all(code.isdigit() and _verhoeff_valid(code) for code in snomed)
    assert not _verhoeff_valid("12989008")  # a transposed T11 code is caught
    # Every treatable level has a SNOMED CT code, and no code names two levels.
    assert {level for (system, _), level in VERTEBRA_CODES.items() if system == SNOMED} == set(VERTEBRAE)
    assert len(VERTEBRA_CODES) == len(tables["vertebra"])
    assert {entry["system"] for entry in tables["medication"]} == {RXNORM, ATC, SNOMED}


def test_a_bad_table_entry_is_refused_naming_the_file_and_the_entry(tmp_path):
    bad = tmp_path / "codes.toml"
    bad.write_text(NATIVE_CODES_FILE.read_text() + '\n[[medication]]\ndrug = "x"\nsystem = "s"\ncode = "999"\n')
    with pytest.raises(
        ValueError, match=r"codes.toml: \[\[medication\]\] entry \d+ \('999'\): missing display, source"
    ):
        _native_codes(bad)
    level = tmp_path / "level.toml"
    level.write_text('[[vertebra]]\nlevel = "C5"\nsystem = "s"\ncode = "1"\ndisplay = "d"\nsource = "x"\n')
    with pytest.raises(ValueError, match="level 'C5' is not one of T1–L5"):
        _native_codes(level)


# --- Procedure.bodySite -------------------------------------------------------------------------


@pytest.mark.hazard("HAZ-50")
def test_a_procedure_coded_with_snomed_vertebrae_records_the_levels_and_reads_back_both_codings(ehr, treated):
    patient_id, _ = treated
    sites = [
        {"coding": [{"system": SNOMED, "code": "23215003", "display": "T12 vertebra"}]},
        {"coding": [{"system": SNOMED, "code": "61032001", "display": "Structure of body of first lumbar vertebra"}]},
    ]
    body = procedure_body(patient_id, performedDateTime=timezone.localdate().isoformat(), bodySite=sites)
    created = parsed(post(ehr, "Procedure", body), FhirProcedure, 201)
    procedure = Procedure.objects.get(pk=created["id"])
    assert sorted(procedure.levels.values_list("level", flat=True)) == ["L1", "T12"]
    read = parsed(ehr.get(f"{FHIR}/Procedure/{procedure.pk}"), FhirProcedure)
    codings = {(c["system"], c["code"]) for site in read["bodySite"] for c in site["coding"]}
    assert {(SYSTEM_VERTEBRA, "T12"), (SYSTEM_VERTEBRA, "L1"), (SNOMED, "23215003"), (SNOMED, "66794005")} <= codings
    # Sent again coded our way instead: the same procedure, nothing new.
    ours = procedure_body(patient_id, performedDateTime=timezone.localdate().isoformat())
    assert parsed(post(ehr, "Procedure", ours), FhirProcedure, 200)["id"] == created["id"]


@pytest.mark.hazard("HAZ-50")
def test_an_unknown_body_site_code_is_a_422_naming_it_and_nothing_is_written(ehr, treated):
    patient_id, _ = treated
    before = (Procedure.objects.count(), Checkpoint.objects.count())
    unknown = procedure_body(
        patient_id,
        performedDateTime=timezone.localdate().isoformat(),
        bodySite=[{"coding": [{"system": SNOMED, "code": "999999999"}]}],
    )
    body = outcome(post(ehr, "Procedure", unknown), 422)
    text = diagnostics(body)
    assert f"{SNOMED}|999999999" in text and SYSTEM_VERTEBRA in text and "SNOMED CT" in text
    assert body["issue"][0]["expression"] == ["Procedure.bodySite[0]"]
    assert (Procedure.objects.count(), Checkpoint.objects.count()) == before


def test_a_procedure_code_in_a_system_we_cannot_map_is_a_422_unless_its_text_names_the_kind(ehr, treated):
    patient_id, _ = treated
    today = timezone.localdate().isoformat()
    coded = {"coding": [{"system": SNOMED, "code": "999999999"}]}
    body = outcome(post(ehr, "Procedure", procedure_body(patient_id, performedDateTime=today, code=coded)), 422)
    assert f"{SNOMED}|999999999" in diagnostics(body) and "kyphoplasty or vertebroplasty" in diagnostics(body)
    assert Procedure.objects.filter(patient_id=patient_id).count() == 1
    named = {**coded, "text": "Percutaneous kyphoplasty"}
    created = parsed(
        post(ehr, "Procedure", procedure_body(patient_id, performedDateTime=today, code=named)), FhirProcedure, 201
    )
    assert created["code"]["coding"][0]["code"] == "kyphoplasty"


def test_codings_of_one_body_site_that_disagree_are_refused(ehr, treated):
    patient_id, _ = treated
    site = {"coding": [{"system": SYSTEM_VERTEBRA, "code": "T12"}, {"system": SNOMED, "code": "66794005"}]}
    body = procedure_body(patient_id, performedDateTime=timezone.localdate().isoformat(), bodySite=[site])
    assert "L1, T12" in diagnostics(outcome(post(ehr, "Procedure", body), 400))


# --- Osteoporosis medicines ---------------------------------------------------------------------


def _order(patient_id, **overrides):
    body = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": (timezone.localdate() - timedelta(days=1)).isoformat(),
    }
    body.update(overrides)
    return body


def _cp07(procedure_id) -> Checkpoint:
    return Checkpoint.objects.get(procedure_id=procedure_id, code="CP-07")


def test_an_rxnorm_only_order_completes_cp07_with_the_drug_named_from_the_table(ehr, treated):
    patient_id, procedure_id = treated
    order = _order(patient_id, medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "904431"}]})
    created = parsed(post(ehr, "MedicationRequest", order), MedicationRequest, 201)
    cp07 = _cp07(procedure_id)
    assert (cp07.state, cp07.medication_drug) == (CheckpointState.COMPLETED, "alendronate sodium 70 mg oral tablet")
    read = parsed(ehr.get(f"{FHIR}/MedicationRequest/{created['id']}"), MedicationRequest)
    assert read["medicationCodeableConcept"]["coding"] == [{"system": RXNORM, "code": "904431"}]


def test_a_snomed_coded_statement_completes_cp07(ehr, treated):
    patient_id, procedure_id = treated
    statement = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": SNOMED, "code": "446321003"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": (timezone.localdate() - timedelta(days=1)).isoformat(),
    }
    parsed(post(ehr, "MedicationStatement", statement), MedicationStatement, 201)
    assert _cp07(procedure_id).medication_drug == "Denosumab (substance)"


def test_a_medication_reference_to_a_contained_medication_completes_cp07_and_a_retry_writes_nothing(ehr, treated):
    patient_id, procedure_id = treated
    contained = {
        "resourceType": "Medication",
        "id": "med1",
        "code": {"coding": [{"system": ATC, "code": "M05BA07"}], "text": "Risedronate 35 mg weekly"},
    }
    order = _order(patient_id, contained=[contained], medicationReference={"reference": "#med1"})
    created = parsed(post(ehr, "MedicationRequest", order), MedicationRequest, 201)
    assert created["contained"][0]["id"] == "med1" and created["medicationReference"] == {"reference": "#med1"}
    cp07 = _cp07(procedure_id)
    assert (cp07.state, cp07.medication_drug) == (CheckpointState.COMPLETED, "Risedronate 35 mg weekly")
    again = parsed(post(ehr, "MedicationRequest", order), MedicationRequest, 200)
    assert again["id"] == created["id"] and FhirResult.objects.filter(patient_id=patient_id).count() == 1


@pytest.mark.hazard("HAZ-50")
@pytest.mark.parametrize(
    ("reference", "contained"),
    [("Medication/17", []), ("https://ehr.example.org/fhir/Medication/17", []), ("#other", [])],
    ids=["relative", "absolute", "no-such-contained"],
)
def test_a_medication_reference_the_server_cannot_resolve_is_a_422(ehr, treated, reference, contained):
    patient_id, procedure_id = treated
    order = _order(patient_id, medicationReference={"reference": reference}, contained=contained)
    body = outcome(post(ehr, "MedicationRequest", {k: v for k, v in order.items() if v != []}), 422)
    assert reference in diagnostics(body)
    assert body["issue"][0]["expression"] == ["MedicationRequest.medicationReference"]
    assert _cp07(procedure_id).state == CheckpointState.SCHEDULED
    assert not FhirResult.objects.exists()


@pytest.mark.hazard("HAZ-50")
def test_an_unknown_medication_code_is_a_422_naming_the_code_and_the_accepted_systems(ehr, treated):
    patient_id, procedure_id = treated
    order = _order(patient_id, medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "161"}]})
    body = outcome(post(ehr, "MedicationRequest", order), 422)
    text = diagnostics(body)
    assert f"{RXNORM}|161" in text and all(system in text for system in (RXNORM, ATC, SNOMED)) and "CP-07" in text
    assert body["issue"][0]["code"] == "code-invalid"
    # The same unknown code inside a contained Medication is refused the same way.
    contained = {"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": SNOMED, "code": "387517004"}]}}
    refused = outcome(
        post(
            ehr, "MedicationRequest", _order(patient_id, contained=[contained], medicationReference={"reference": "#m"})
        ),
        422,
    )
    assert f"{SNOMED}|387517004" in diagnostics(refused)
    assert refused["issue"][0]["expression"] == ["MedicationRequest.contained"]
    assert _cp07(procedure_id).state == CheckpointState.SCHEDULED and not FhirResult.objects.exists()


# --- The MRN's identifier system ----------------------------------------------------------------


def test_the_mrn_keeps_the_senders_identifier_system_through_create_read_and_update(ehr, clinic, make_patient):
    created = parsed(post(ehr, "Patient", patient_body("SYS-1")), FhirPatient, 201)
    [identifier] = created["identifier"]
    assert (identifier["system"], identifier["value"]) == (SENDER_MRN_SYSTEM, "SYS-1")
    assert identifier["type"]["coding"][0]["code"] == "MR"
    patient = Patient.objects.get(pk=created["id"])
    assert (patient.mrn, patient.mrn_system) == ("SYS-1", SENDER_MRN_SYSTEM)
    read = parsed(ehr.get(f"{FHIR}/Patient/{patient.pk}"), FhirPatient)
    assert read["identifier"][0]["system"] == SENDER_MRN_SYSTEM
    # The EHR moves to another identifier system: the update replaces it.
    moved = patient_body("SYS-1", id=str(patient.pk))
    moved["identifier"][0]["system"] = "https://ehr.example.org/mrn"
    assert parsed(put(ehr, f"Patient/{patient.pk}", moved), FhirPatient)["identifier"][0]["system"] == (
        "https://ehr.example.org/mrn"
    )
    # A patient registered elsewhere (JSON API, admin, import) has no sender system: ours is given.
    other = make_patient(clinic=clinic, mrn="JSON-1")
    shown = parsed(ehr.get(f"{FHIR}/Patient/{other.pk}"), FhirPatient)["identifier"][0]["system"]
    assert shown == f"https://kyphofollow.invalid/mrn/{clinic.slug}"
    # Our own system sent back is not stored as a sender system.
    ours = patient_body("SYS-2", birthDate=birth_date_for_age(70).isoformat())
    ours["identifier"] = [{"system": shown, "value": "SYS-2"}]
    again = parsed(post(ehr, "Patient", ours), FhirPatient, 201)
    assert Patient.objects.get(pk=again["id"]).mrn_system == ""
    assert json.dumps(again).count(shown) == 1
    # A system longer than the registry keeps is refused at the identifier, and nothing is written.
    long = patient_body("SYS-3", birthDate=birth_date_for_age(72).isoformat())
    long["identifier"][0]["system"] = "urn:x:" + "a" * 300
    refused = outcome(post(ehr, "Patient", long), 400)
    assert refused["issue"][0]["expression"] == ["Patient.identifier"]
    assert not Patient.objects.filter(mrn="SYS-3").exists()
