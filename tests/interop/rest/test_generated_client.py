"""A client generated from the served `/api/schema/` by openapi-python-client, with its default settings,
drives the API end to end against a live server: patient → procedure → symptom report with a red flag →
the alert → acknowledge; acknowledging again is a 409 the client parses as the documented `Error`."""

import datetime
import importlib
import os
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from tests.builders import make_api_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_throttle")]

PACKAGE = "kyphofollow_api_client"  # openapi-python-client's name for the schema's title, "kyphofollow API"


@pytest.fixture
def generated(live_server, tmp_path):
    """The generated client package, imported from a temporary directory and forgotten afterwards."""
    schema = requests.get(f"{live_server.url}/api/schema/", params={"format": "json"}, timeout=30)
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_bytes(schema.content)
    tool = Path(sys.executable).parent / "openapi-python-client"
    environment = {**os.environ, "PATH": f"{tool.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff hooks
    run = subprocess.run(
        [str(tool), "generate", "--path", "schema.json", "--output-path", "client"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(tmp_path / "client"))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(tmp_path / "client"))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_a_generated_client_registers_reports_and_acknowledges(live_server, clinic, generated):
    client = generated("client").AuthenticatedClient(base_url=live_server.url, token=make_api_token(clinics=[clinic]))
    models = generated("models")
    create_patient, create_procedure, create_report, list_alerts, acknowledge = (
        generated(f"api.v1.v1_{name}")
        for name in (
            "patients_create",
            "procedures_create",
            "symptom_reports_create",
            "alerts_list",
            "alerts_acknowledge_create",
        )
    )
    today = timezone.localdate()

    refused = create_patient.sync_detailed(
        client=client,
        body=models.PatientRequest(
            mrn="GEN-1",
            given_name="Ana",
            family_name="Example",
            birth_date=datetime.date(1948, 5, 1),
            timezone="GMT+0x",
        ),
    )
    assert refused.status_code == HTTPStatus.BAD_REQUEST and isinstance(refused.parsed, models.Error)
    assert refused.parsed.additional_properties == {
        "timezone": ["Not an IANA time zone name; use one such as Europe/London."]
    }

    patient = create_patient.sync(
        client=client,
        body=models.PatientRequest(
            mrn="GEN-1", given_name="Ana", family_name="Example", birth_date=datetime.date(1948, 5, 1), timezone="GMT0"
        ),
        idempotency_key="gen-patient-1",
    )
    assert isinstance(patient, models.Patient), patient
    assert patient.email is None and patient.timezone == "GMT0"

    procedure = create_procedure.sync(
        client=client,
        body=models.ProcedureRequest(
            patient=patient.id,
            kind=models.ProcedureKindEnum.KYPHOPLASTY,
            performed_on=today,
            fracture_diagnosed_on=today,
            baseline_pain=8,
            levels=[models.TreatedLevelRequest(level=models.LevelEnum.T12, cement_leakage=False, hounsfield_units=120)],
        ),
    )
    assert isinstance(procedure, models.Procedure), procedure

    report = create_report.sync(
        client=client, body=models.SymptomReportRequest(patient=patient.id, pain_now=6, red_flags=["RF-02"])
    )
    assert isinstance(report, models.SymptomReport), report
    assert [(finding.code, str(finding.tier)) for finding in report.findings] == [("RF-02", "emergency")]

    alerts = list_alerts.sync(client=client, patient=patient.id)
    [alert] = alerts.results
    assert alert.code == "RF-02" and str(alert.state) == "open"

    acknowledged = acknowledge.sync_detailed(
        alert.id, client=client, body=models.AcknowledgeRequest(note="EHR worklist"), idempotency_key="gen-ack-1"
    )
    assert acknowledged.status_code == HTTPStatus.OK and str(acknowledged.parsed.state) == "acknowledged"
    retried = acknowledge.sync_detailed(
        alert.id, client=client, body=models.AcknowledgeRequest(note="EHR worklist"), idempotency_key="gen-ack-1"
    )
    assert retried.status_code == HTTPStatus.OK and retried.headers["Idempotent-Replayed"] == "true"

    again = acknowledge.sync_detailed(alert.id, client=client, body=models.AcknowledgeRequest())
    assert again.status_code == HTTPStatus.CONFLICT and isinstance(again.parsed, models.Error)
    assert again.parsed.detail == "This alert is already acknowledged."
    assert again.parsed.current_state == "acknowledged"
