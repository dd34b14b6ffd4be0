"""Request bodies that would cost a worker memory or recursion are refused before any parser sees them:
a JSON body in any charset but UTF-8 (415; `bz2_codec` would inflate a tiny body) and JSON nested deeper
than MAX_JSON_DEPTH (400 naming the problem), on REST and FHIR alike."""

import bz2
import json
import resource

import pytest

from kyphofollow.middleware import MAX_JSON_DEPTH
from tests.builders import API_BASE, changed_tables, snapshot

FHIR_JSON = "application/fhir+json"
# 128 MiB of JSON whitespace and an empty object, compressed to a few hundred bytes.
BOMB = bz2.compress(b" " * (128 * 1024 * 1024) + b"{}")


@pytest.fixture
def ehr(make_token, bearer, clinic, fresh_throttle):
    return bearer(make_token(clinics=[clinic]))


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def nested(depth: int) -> str:
    return "[" * (depth - 1) + '{"a": 1}' + "]" * (depth - 1)


@pytest.mark.parametrize(
    "path, media_type",
    [
        (f"{API_BASE}/patients/", "application/json"),
        (f"{API_BASE}/symptom-reports/", "application/json"),
        ("/fhir/Patient", FHIR_JSON),
        ("/fhir/Observation", FHIR_JSON),
    ],
)
def test_a_bz2_charset_bomb_is_a_415_and_the_worker_memory_stays_flat(ehr, path, media_type):
    assert len(BOMB) < 500
    before, peak_before = snapshot(), peak_rss_kib()

    response = ehr.generic("POST", path, BOMB, content_type=f"{media_type}; charset=bz2_codec")

    assert response.status_code == 415
    assert "charset" in response.content.decode()
    assert peak_rss_kib() - peak_before < 16 * 1024, "the body was inflated"
    assert changed_tables(before, snapshot()) == []


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "rot13"])
def test_any_json_charset_but_utf8_is_a_415(ehr, charset):
    response = ehr.generic("POST", f"{API_BASE}/patients/", b"{}", content_type=f"application/json; charset={charset}")

    assert response.status_code == 415


def test_an_explicit_utf8_charset_is_accepted(ehr):
    response = ehr.generic("POST", f"{API_BASE}/patients/", b"{}", content_type="application/json; charset=UTF-8")

    assert response.status_code == 400  # the body reaches validation: fields are missing
    assert "charset" not in response.content.decode()


def test_json_nested_past_the_cap_is_a_400_naming_it_on_rest(ehr):
    before = snapshot()

    response = ehr.generic("POST", f"{API_BASE}/patients/", nested(MAX_JSON_DEPTH + 1), content_type="application/json")

    assert response.status_code == 400
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in response.json()["detail"]
    assert changed_tables(before, snapshot()) == []


def test_json_nested_thousands_deep_is_a_400_operation_outcome_on_fhir(ehr):
    response = ehr.generic("POST", "/fhir/Patient", nested(100_000), content_type=FHIR_JSON)

    assert response.status_code == 400
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in body["issue"][0]["diagnostics"]


def test_json_at_the_cap_reaches_the_view_and_brackets_inside_strings_do_not_count(ehr):
    at_cap = ehr.generic("POST", f"{API_BASE}/patients/", nested(MAX_JSON_DEPTH), content_type="application/json")
    brackets_in_a_string = json.dumps({"mrn": "[" * 200 + '\\"{' * 50})
    in_string = ehr.generic("POST", f"{API_BASE}/patients/", brackets_in_a_string, content_type="application/json")

    assert at_cap.status_code == 400 and "nested" not in at_cap.content.decode()
    assert in_string.status_code == 400 and "nested" not in in_string.content.decode()
