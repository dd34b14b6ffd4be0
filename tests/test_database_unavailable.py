"""What every kind of page answers when the database is unreachable (the real outage is in
tests/faults/test_postgres_restart.py): a 503 with Retry-After, never a 500, in the form its reader
expects, and for a patient whose unsent answers hold a red flag, what to do now."""

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from alerts.rules import get_rules
from kyphofollow.unavailable import DatabaseUnavailableMiddleware, server_error

WORDING = get_rules("2026.1").wording
factory = RequestFactory()


def answer(request, exception=None):
    exception = exception or OperationalError("connection refused")
    response = DatabaseUnavailableMiddleware(lambda r: None).process_exception(request, exception)
    assert response is not None
    return response


@pytest.mark.hazard("HAZ-60")
def test_an_unsent_emergency_answer_shows_the_emergency_instruction_and_says_the_clinician_was_not_told():
    response = answer(factory.post("/checkin/", {"RF-01": "yes", "pain_now": ""}))

    page = response.content.decode()
    assert (response.status_code, response["Retry-After"], response["Cache-Control"]) == (503, "30", "no-store")
    assert WORDING["emergency_no_number"] in page  # the clinic and its number are in the database
    assert "your clinician has not been told" in page


@pytest.mark.hazard("HAZ-60")
def test_a_fall_counts_as_its_red_flag_on_the_unsent_page_too():
    page = answer(factory.post("/checkin/more/", {"fell_since_last": "yes"})).content.decode()

    assert "Your clinician has not been told" in page
    assert WORDING["worse"] in page


def test_unsent_answers_without_a_red_flag_say_nothing_was_saved_and_to_try_again():
    page = answer(factory.post("/checkin/", {"RF-01": "no", "pain_now": "4"})).content.decode()

    assert "nothing has been saved" in page
    assert "has not been told" not in page


def test_the_api_answers_json_and_fhir_an_operation_outcome():
    api = answer(factory.post("/api/v1/symptom-reports/"), InterfaceError("connection already closed"))
    fhir = answer(factory.get("/fhir/Patient"))

    assert api.status_code == fhir.status_code == 503
    assert "database unreachable" in json.loads(api.content)["detail"]
    outcome = json.loads(fhir.content)
    assert (outcome["resourceType"], outcome["issue"][0]["code"]) == ("OperationOutcome", "transient")


def test_other_errors_are_left_to_djangos_500():
    assert DatabaseUnavailableMiddleware(lambda r: None).process_exception(factory.get("/"), ValueError()) is None


def test_a_database_error_raised_outside_a_view_is_still_a_503():
    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        response = server_error(factory.get("/admin/"))

    assert response.status_code == 503
    assert "Nothing from this request was saved" in response.content.decode()
