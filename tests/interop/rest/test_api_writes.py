"""Writes over the REST API: validation, body limits, idempotent retries (also racing ones), upserts by
MRN, incremental sync with `updated_since`, cursor pages, and an access log without PHI.

Northside's EHR (`ehr`) is the caller unless a test says otherwise.
"""

import json
import logging
import threading
from datetime import timedelta

import pytest
import requests
from django.apps import apps
from django.conf import settings
from django.utils import timezone

from alerts import reports
from alerts.models import Alert, SymptomReport
from patients.models import Checkpoint, IdempotencyRecord, Patient, Procedure
from tests.builders import API_BASE as BASE
from tests.builders import changed_tables, snapshot

pytestmark = pytest.mark.usefixtures("fresh_throttle")


def days_from_today(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


def new_patient(**fields) -> dict:
    return {
        "mrn": "W-0001",
        "given_name": "Bea",
        "family_name": "Example",
        "birth_date": "1950-02-03",
        "timezone": "Europe/London",
    } | fields


def error_paths(body, prefix: str = "") -> set[str]:
    """{"levels": [{"level": [...]}]} → {"levels[0].level"}; service errors already use that form."""
    if isinstance(body, dict):
        if all(isinstance(v, str) for v in body.values()) and prefix:
            return {prefix}
        paths = set()
        for key, value in body.items():
            paths |= error_paths(value, f"{prefix}.{key}" if prefix else str(key))
        return paths
    if isinstance(body, list) and body and all(isinstance(item, dict | list) for item in body):
        paths = set()
        for index, item in enumerate(body):
            if item:
                paths |= error_paths(item, f"{prefix}[{index}]")
        return paths
    return {prefix}


@pytest.fixture
def ana(make_procedure, make_patient):
    """Northside's patient Ana (MRN NS-0001) with a kyphoplasty yesterday."""
    return make_procedure(patient=make_patient(mrn="NS-0001", given_name="Ana")).patient


# --- Validation ---------------------------------------------------------------------------------

INVALID = [
    # (case, endpoint, body built from Ana, the error's field path)
    ("T13 is not a vertebra", "procedures", lambda p: {"levels": [{"level": "T13"}]}, "levels[0].level"),
    (
        "HU 401 is above 400",
        "procedures",
        lambda p: {"levels": [{"level": "L1", "hounsfield_units": 401}]},
        "levels[0].hounsfield_units",
    ),
    (
        "the same level twice",
        "procedures",
        lambda p: {"levels": [{"level": "L1"}, {"level": "L1"}]},
        "levels[1].level",
    ),
    ("no treated level", "procedures", lambda p: {"levels": []}, "levels"),
    ("a procedure tomorrow", "procedures", lambda p: {"performed_on": days_from_today(1)}, "performed_on"),
    (
        "a procedure before its fracture",
        "procedures",
        lambda p: {"performed_on": days_from_today(-5), "fracture_diagnosed_on": days_from_today(-1)},
        "fracture_diagnosed_on",
    ),
    ("an unknown procedure kind", "procedures", lambda p: {"kind": "laser"}, "kind"),
    ("a 31-digit baseline pain", "procedures", lambda p: {"baseline_pain": 10**30}, "baseline_pain"),
    (
        "a 20-digit HU",
        "procedures",
        lambda p: {"levels": [{"level": "L1", "hounsfield_units": 10**20}]},
        "levels[0].hounsfield_units",
    ),
    ("a 20-digit patient id", "procedures", lambda p: {"patient": 10**20}, "patient"),
    ("a T-score of -7", "patients", lambda p: new_patient(bmd_lowest_t_score="-7.0"), "bmd_lowest_t_score"),
    ("an MRN already used in the clinic", "patients", lambda p: new_patient(mrn=p.mrn), "mrn"),
    ("an unknown sex", "patients", lambda p: new_patient(sex="robot"), "sex"),
    ("an unknown time zone", "patients", lambda p: new_patient(timezone="Mars/Olympus_Mons"), "timezone"),
    ("a NUL byte in a name", "patients", lambda p: new_patient(given_name="Be\x00a"), "given_name"),
    ("a NUL byte in the clinic slug", "patients", lambda p: new_patient(clinic="north\x00side"), "clinic"),
    (
        "a 20-digit fracture count",
        "patients",
        lambda p: new_patient(prior_vertebral_fractures=2**64),
        "prior_vertebral_fractures",
    ),
    ("an age of 120", "patients", lambda p: new_patient(birth_date="1900-01-01"), "birth_date"),
    ("pain 11", "symptom-reports", lambda p: {"pain_now": 11}, "pain_now"),
    ("a 40-digit pain", "symptom-reports", lambda p: {"pain_now": 10**40}, "pain_now"),
    ("an unknown red flag", "symptom-reports", lambda p: {"red_flags": ["RF-99"]}, "red_flags"),
    ("a NUL byte in a red flag", "symptom-reports", lambda p: {"red_flags": ["RF-0\x00"]}, "red_flags"),
    ("a NUL byte in free text", "symptom-reports", lambda p: {"other_symptoms": "ache\x00"}, "other_symptoms"),
    ("an unknown painkiller class", "symptom-reports", lambda p: {"painkillers": "whisky"}, "painkillers"),
    (
        "an unknown second-opinion answer",
        "symptom-reports",
        lambda p: {"second_opinion": {"SO-1": "maybe"}},
        "second_opinion",
    ),
]


def valid_body(endpoint: str, patient: Patient) -> dict:
    if endpoint == "procedures":
        return {
            "patient": patient.pk,
            "kind": "kyphoplasty",
            "performed_on": days_from_today(-1),
            "fracture_diagnosed_on": days_from_today(-5),
            "levels": [{"level": "L1"}],
        }
    if endpoint == "symptom-reports":
        return {"patient": patient.pk, "pain_now": 3}
    return new_patient()


@pytest.mark.parametrize("case, endpoint, change, field", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_input_is_a_400_naming_the_field_and_saves_nothing(ehr, ana, case, endpoint, change, field):
    ehr.raise_request_exception = False  # a 500 is a finding to report, not a crash of the test
    body = valid_body(endpoint, ana) | change(ana)
    before = snapshot()

    response = ehr.post(f"{BASE}/{endpoint}/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"bad-{case}")

    assert response.status_code == 400, response.content
    paths = error_paths(response.json())
    assert any(path == field or path.startswith((f"{field}.", f"{field}[")) for path in paths), response.json()
    assert changed_tables(before, snapshot()) == []


@pytest.mark.parametrize("endpoint", ["patients", "procedures", "symptom-reports"])
def test_the_valid_twin_of_each_refused_body_is_accepted(ehr, ana, endpoint):
    """Guards the table above: each refusal is caused by the one changed field, not by the base body."""
    response = ehr.post(f"{BASE}/{endpoint}/", valid_body(endpoint, ana), format="json")
    assert response.status_code == 201, response.content


def test_a_refused_request_leaves_its_idempotency_key_free_for_the_corrected_retry(ehr, ana):
    bad = ehr.post(f"{BASE}/patients/", new_patient(sex="robot"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    good = ehr.post(f"{BASE}/patients/", new_patient(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (bad.status_code, good.status_code) == (400, 201)
    assert "Idempotent-Replayed" not in good


@pytest.mark.parametrize("body", ['{"mrn": ', "{'mrn': 'W-1'}", "[1, 2", "NaN"])
def test_malformed_json_is_a_400_and_saves_nothing(ehr, ana, body):
    before = snapshot()
    response = ehr.generic("POST", f"{BASE}/patients/", body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert changed_tables(before, snapshot()) == []


@pytest.mark.parametrize("body", ["[]", "null", '"W-1"', "42"])
def test_a_json_body_that_is_not_an_object_is_a_400_for_every_write(ehr, ana, body):
    """A JSON array, null, string or number where an object is expected: refused, never a 500."""
    checkpoint = Checkpoint.objects.filter(procedure__patient=ana, code="CP-01").get()
    targets = [
        ("POST", f"{BASE}/patients/"),
        ("PUT", f"{BASE}/patients/by-mrn/W-1/"),
        ("PATCH", f"{BASE}/patients/{ana.pk}/"),
        ("POST", f"{BASE}/procedures/"),
        ("POST", f"{BASE}/symptom-reports/"),
        ("POST", f"{BASE}/checkpoints/{checkpoint.pk}/cancel/"),
    ]
    ehr.raise_request_exception = False
    before = snapshot()
    statuses = {
        f"{method} {url}": ehr.generic(method, url, body, content_type="application/json").status_code
        for method, url in targets
    }
    assert statuses == {target: 400 for target in statuses}
    assert changed_tables(before, snapshot()) == []


@pytest.mark.parametrize(
    "path",
    [
        "patients/",
        "patients/by-mrn/NS-0001/",
        "patients/{patient}/",
        "procedures/",
        "checkpoints/{checkpoint}/cancel/",
        "symptom-reports/",
        "alerts/",
        "protocol/",
    ],
)
def test_options_on_an_endpoint_is_answered_never_a_server_error(ehr, ana, path):
    ehr.raise_request_exception = False
    checkpoint = Checkpoint.objects.filter(procedure__patient=ana).first()
    response = ehr.options(f"{BASE}/{path.format(patient=ana.pk, checkpoint=checkpoint.pk)}")
    assert response.status_code < 500, response.content[:200]


def test_a_nul_byte_in_the_protocol_clinic_parameter_is_refused_not_a_server_error(ehr, ana):
    ehr.raise_request_exception = False
    response = ehr.get(f"{BASE}/protocol/", {"clinic": "north\x00side"})
    assert response.status_code in (400, 404)


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "patients/"),
        ("PUT", "patients/by-mrn/W-1/"),
        ("POST", "procedures/"),
        ("POST", "symptom-reports/"),
    ],
)
@pytest.mark.parametrize(
    "content_type, body",
    [("text/plain", "mrn=W-1"), ("application/x-www-form-urlencoded", "mrn=W-1"), ("application/xml", "<mrn/>")],
)
def test_a_body_that_is_not_json_is_a_415_and_saves_nothing(ehr, ana, method, path, content_type, body):
    before = snapshot()
    response = ehr.generic(method, f"{BASE}/{path}", body, content_type=content_type)
    assert response.status_code == 415
    assert changed_tables(before, snapshot()) == []


def padded_procedure(patient: Patient, total_bytes: int) -> bytes:
    body = {
        "patient": patient.pk,
        "kind": "kyphoplasty",
        "performed_on": days_from_today(-1),
        "levels": [{"level": "L3"}],
        "notes": "",
    }
    size = len(json.dumps(body).encode())
    body["notes"] = "x" * (total_bytes - size)
    encoded = json.dumps(body).encode()
    assert len(encoded) == total_bytes
    return encoded


def test_a_body_one_byte_over_the_limit_is_a_413_and_saves_nothing(ehr, ana):
    before = snapshot()
    body = padded_procedure(ana, settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = ehr.generic("POST", f"{BASE}/procedures/", body, content_type="application/json")
    assert response.status_code == 413
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in response.json()["detail"]
    assert changed_tables(before, snapshot()) == []


def test_a_body_exactly_at_the_limit_is_accepted(ehr, ana):
    body = padded_procedure(ana, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    response = ehr.generic("POST", f"{BASE}/procedures/", body, content_type="application/json")
    assert response.status_code == 201, response.content[:300]


# --- Idempotency --------------------------------------------------------------------------------

CREATES = {
    # endpoint: (model, body, a change to that body)
    "patients": (Patient, lambda p: new_patient(mrn="IDEM-1"), {"given_name": "Other"}),
    "procedures": (
        Procedure,
        lambda p: valid_body("procedures", p) | {"levels": [{"level": "T12"}]},
        {"notes": "changed"},
    ),
    "symptom-reports": (
        SymptomReport,
        lambda p: {"patient": p.pk, "pain_now": 5, "red_flags": ["RF-05"]},
        {"pain_now": 1},
    ),
}


@pytest.mark.parametrize("endpoint", CREATES)
def test_a_retried_post_with_the_same_key_returns_the_first_response_and_creates_one_row(ehr, ana, endpoint):
    model, body, _ = CREATES[endpoint]
    rows_before = model.objects.count()

    first = ehr.post(f"{BASE}/{endpoint}/", body(ana), format="json", HTTP_IDEMPOTENCY_KEY="retry-me")
    second = ehr.post(f"{BASE}/{endpoint}/", body(ana), format="json", HTTP_IDEMPOTENCY_KEY="retry-me")

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert model.objects.count() == rows_before + 1


@pytest.mark.parametrize("endpoint", CREATES)
def test_the_same_key_with_a_different_body_is_a_422_and_creates_nothing_more(ehr, ana, endpoint):
    model, body, change = CREATES[endpoint]
    first = ehr.post(f"{BASE}/{endpoint}/", body(ana), format="json", HTTP_IDEMPOTENCY_KEY="retry-me")
    rows_after_first = model.objects.count()

    second = ehr.post(f"{BASE}/{endpoint}/", body(ana) | change, format="json", HTTP_IDEMPOTENCY_KEY="retry-me")

    assert (first.status_code, second.status_code) == (201, 422)
    assert "Idempotency-Key" in second.json()["detail"]
    assert model.objects.count() == rows_after_first


def test_without_a_key_two_identical_reports_are_two_reports(ehr, ana):
    """The key, not the body, makes a retry: a patient may report the same pain twice."""
    body = {"patient": ana.pk, "pain_now": 4}
    ehr.post(f"{BASE}/symptom-reports/", body, format="json")
    ehr.post(f"{BASE}/symptom-reports/", body, format="json")
    assert SymptomReport.objects.filter(patient=ana).count() == 2


def race(count: int, send) -> list:
    """Run `send(i)` in `count` threads released together; returns the responses in thread order."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(index):
        barrier.wait()
        results[index] = send(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def live_ehr(live_server, clinic, make_token):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {make_token(clinics=[clinic])}"
    return live_server.url + BASE, session


@pytest.mark.django_db(transaction=True)
def test_two_racing_posts_with_the_same_key_create_one_patient_and_get_the_same_answer(live_ehr, clinic):
    base, session = live_ehr
    for attempt in range(5):
        body = new_patient(mrn=f"RACE-{attempt}")
        responses = race(
            2,
            lambda i, b=body, a=attempt: session.post(
                f"{base}/patients/", json=b, headers={"Idempotency-Key": f"race-{a}"}, timeout=30
            ),
        )
        assert [r.status_code for r in responses] == [201, 201], [r.text[:200] for r in responses]
        assert responses[0].json() == responses[1].json()
        assert sorted(r.headers.get("Idempotent-Replayed", "-") for r in responses) == ["-", "true"]
        assert Patient.objects.filter(clinic=clinic, mrn=f"RACE-{attempt}").count() == 1
    assert IdempotencyRecord.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_two_racing_registrations_of_one_mrn_without_a_key_give_one_patient_and_a_400(live_ehr, clinic):
    base, session = live_ehr
    for attempt in range(5):
        body = new_patient(mrn=f"DUP-{attempt}")
        responses = race(2, lambda i, b=body: session.post(f"{base}/patients/", json=b, timeout=30))
        assert sorted(r.status_code for r in responses) == [201, 400], [r.text[:200] for r in responses]
        assert Patient.objects.filter(clinic=clinic, mrn=f"DUP-{attempt}").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_racing_upserts_of_a_new_mrn_give_one_patient_and_no_server_error(live_ehr, clinic):
    base, session = live_ehr
    for attempt in range(5):
        body = {key: value for key, value in new_patient().items() if key != "mrn"}
        responses = race(
            2, lambda i, b=body, a=attempt: session.put(f"{base}/patients/by-mrn/UP-{a}/", json=b, timeout=30)
        )
        assert sorted(r.status_code for r in responses) == [200, 201], [r.text[:200] for r in responses]
        assert Patient.objects.filter(clinic=clinic, mrn=f"UP-{attempt}").count() == 1


# --- Upsert by MRN and two-clinic clients -------------------------------------------------------


def test_put_by_mrn_creates_then_updates_the_same_patient(ehr, clinic):
    body = {key: value for key, value in new_patient().items() if key != "mrn"}

    created = ehr.put(f"{BASE}/patients/by-mrn/EHR-77/", body, format="json")
    updated = ehr.put(f"{BASE}/patients/by-mrn/EHR-77/", body | {"family_name": "Renamed"}, format="json")
    again = ehr.put(f"{BASE}/patients/by-mrn/EHR-77/", body | {"family_name": "Renamed"}, format="json")

    assert (created.status_code, updated.status_code, again.status_code) == (201, 200, 200)
    assert created.json()["id"] == updated.json()["id"] == again.json()["id"]
    assert Patient.objects.filter(clinic=clinic, mrn="EHR-77").count() == 1
    assert Patient.objects.get(clinic=clinic, mrn="EHR-77").family_name == "Renamed"


def test_put_by_mrn_takes_the_mrn_from_the_url_not_the_body(ehr, clinic):
    body = new_patient(mrn="BODY-MRN")
    response = ehr.put(f"{BASE}/patients/by-mrn/URL-MRN/", body, format="json")
    assert response.status_code == 201
    assert response.json()["mrn"] == "URL-MRN"
    assert not Patient.objects.filter(mrn="BODY-MRN").exists()


def test_put_by_mrn_never_touches_another_clinics_patient_with_that_mrn(ehr, make_patient, other_clinic):
    theirs = make_patient(clinic=other_clinic, mrn="SAME-1", family_name="Theirs", time_zone="America/New_York")
    body = {key: value for key, value in new_patient().items() if key != "mrn"}

    response = ehr.put(f"{BASE}/patients/by-mrn/SAME-1/", body, format="json")

    assert response.status_code == 201
    assert response.json()["clinic"] == "northside" and response.json()["id"] != theirs.pk
    theirs.refresh_from_db()
    assert theirs.family_name == "Theirs"


@pytest.fixture
def two_clinic_ehr(make_token, bearer, clinic, other_clinic):
    return bearer(make_token(clinics=[clinic, other_clinic]))


def test_a_client_serving_two_clinics_must_name_the_clinic_of_a_new_patient(two_clinic_ehr, other_clinic):
    before = snapshot()
    unnamed = two_clinic_ehr.post(f"{BASE}/patients/", new_patient(), format="json")
    assert unnamed.status_code == 400 and "clinic" in unnamed.json()
    assert changed_tables(before, snapshot()) == []

    named = two_clinic_ehr.post(f"{BASE}/patients/", new_patient(clinic=other_clinic.slug), format="json")
    assert named.status_code == 201
    assert Patient.objects.get(pk=named.json()["id"]).clinic == other_clinic


def test_a_client_serving_two_clinics_must_name_the_clinic_when_upserting(two_clinic_ehr):
    body = {key: value for key, value in new_patient().items() if key != "mrn"}
    response = two_clinic_ehr.put(f"{BASE}/patients/by-mrn/TWO-1/", body, format="json")
    assert response.status_code == 400 and "clinic" in response.json()
    assert not Patient.objects.filter(mrn="TWO-1").exists()


# --- Incremental sync and cursor pages ----------------------------------------------------------


@pytest.fixture
def five_patients(make_procedure, make_patient):
    """Five Northside patients, each with a procedure (so a schedule) and an RF-02 report (so an alert)."""
    for number in range(5):
        procedure = make_procedure(patient=make_patient(mrn=f"SYNC-{number}"))
        reports.submit_report(procedure=procedure, source="api", pain_now=3, red_flags=["RF-02"])
    return list(Patient.objects.filter(mrn__startswith="SYNC-").order_by("id"))


LISTS = {
    "patients": Patient,
    "procedures": Procedure,
    "checkpoints": Checkpoint,
    "symptom-reports": SymptomReport,
    "alerts": Alert,
}


@pytest.mark.parametrize("endpoint", LISTS)
def test_updated_since_returns_exactly_the_rows_changed_at_or_after_the_instant(ehr, five_patients, endpoint):
    model = LISTS[endpoint]
    instant = timezone.now().replace(microsecond=123456) - timedelta(hours=1)
    rows = list(model.objects.order_by("id").values_list("id", flat=True))
    assert len(rows) >= 4
    model.objects.update(updated_at=instant - timedelta(days=1))
    just_before, at, after = rows[0], rows[1], rows[2]
    model.objects.filter(pk=just_before).update(updated_at=instant - timedelta(microseconds=1))
    model.objects.filter(pk=at).update(updated_at=instant)
    model.objects.filter(pk=after).update(updated_at=instant + timedelta(minutes=5))

    response = ehr.get(f"{BASE}/{endpoint}/", {"updated_since": instant.isoformat(), "page_size": 500})

    assert response.status_code == 200
    assert sorted(row["id"] for row in response.json()["results"]) == [at, after]


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", ""])
@pytest.mark.parametrize("endpoint", LISTS)
def test_updated_since_that_is_not_an_instant_is_a_400_not_a_full_export(ehr, five_patients, endpoint, value):
    """An EHR whose last-sync time is blank must hear about it, not silently receive every row."""
    response = ehr.get(f"{BASE}/{endpoint}/", {"updated_since": value})
    assert response.status_code == 400, f"{response.status_code}: {len(response.json().get('results', []))} rows"
    assert "updated_since" in response.json()


def walk(client, url: str, params: dict) -> tuple[list[int], int]:
    """Follow `next` from the first page to the last; returns every id seen and the number of pages."""
    response = client.get(url, params)
    seen, pages = [], 0
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [row["id"] for row in body["results"]]
        pages += 1
        if not body["next"]:
            return seen, pages
        assert pages < 200, "the cursor never ends"
        response = client.get(body["next"])


PAGINGS = [
    ("patients", None),
    ("patients", "-updated_at"),
    ("procedures", "-performed_on"),
    ("checkpoints", "due_at"),  # five schedules from the same day: ties across procedures
    ("checkpoints", "-target_date"),
    ("checkpoints", "due_at,id"),  # the same ordering with its tie broken
    ("symptom-reports", "reported_at"),
    ("alerts", "-updated_at"),
]


@pytest.mark.parametrize("endpoint, ordering", PAGINGS)
def test_cursor_pages_return_every_row_once(ehr, five_patients, endpoint, ordering):
    model = LISTS[endpoint]
    model.objects.update(updated_at=timezone.now())  # a tie on updated_at too
    params = {"page_size": 2} | ({"ordering": ordering} if ordering else {})

    seen, pages = walk(ehr, f"{BASE}/{endpoint}/", params)

    assert pages > 1, "the test needs more than one page"
    assert len(seen) == len(set(seen)), f"repeated rows: {sorted({i for i in seen if seen.count(i) > 1})}"
    assert set(seen) == set(model.objects.values_list("id", flat=True))


# --- Access log -----------------------------------------------------------------------------------

SECRET_MRN = "MRN-4711-SECRET"


def upsert_three_times(ehr):
    body = {key: value for key, value in new_patient().items() if key != "mrn"}
    statuses = [
        ehr.put(f"{BASE}/patients/by-mrn/{SECRET_MRN}/", body, format="json").status_code,
        ehr.put(f"{BASE}/patients/by-mrn/{SECRET_MRN}/", body, format="json").status_code,
        ehr.put(f"{BASE}/patients/by-mrn/{SECRET_MRN}/", body | {"sex": "robot"}, format="json").status_code,
    ]
    assert statuses == [201, 200, 400]


def test_the_access_log_names_the_by_mrn_route_but_never_the_mrn(ehr, caplog):
    caplog.set_level(logging.INFO, logger="kyphofollow.access")
    upsert_three_times(ehr)
    lines = [record.getMessage() for record in caplog.records if record.name == "kyphofollow.access"]
    assert len(lines) == 3
    assert all("by-mrn" in line for line in lines)
    assert not [line for line in lines if SECRET_MRN in line]


def test_no_log_line_of_any_logger_carries_the_mrn_of_a_by_mrn_request(ehr, caplog):
    """Settings promise log lines never carry an MRN (ASVS 7.1.1), whichever logger writes them."""
    caplog.set_level(logging.DEBUG)
    upsert_three_times(ehr)
    leaks = [f"{record.name}: {record.getMessage()}" for record in caplog.records if SECRET_MRN in record.getMessage()]
    assert not leaks


def test_every_model_of_the_registry_is_watched_by_the_nothing_saved_checks(db):
    watched = set(snapshot())
    expected = {m._meta.label for m in apps.get_app_config("patients").get_models()} - {"patients.ApiClient"}
    assert expected <= watched


@pytest.mark.parametrize(
    ("endpoint", "parameter"),
    [("patients", "status"), ("procedures", "patient"), ("checkpoints", "state"), ("alerts", "tier")],
)
def test_a_blank_filter_is_a_400_not_a_full_export(ehr, five_patients, endpoint, parameter):
    """`?status=` (a template that left the value out) must not quietly widen the list to every row."""
    response = ehr.get(f"{BASE}/{endpoint}/", {parameter: ""})
    assert response.status_code == 400, f"{response.status_code}: {len(response.json().get('results', []))} rows"
    assert response.json()[parameter] == ["Give a value, or leave the parameter out."]
