"""Nothing is delivered for a transaction that rolled back: the outbox row goes with it, and so does the
on-commit enqueue. The committed twin is paged at once, so the worker was listening."""

import pytest
from django.db import transaction

from alerts.models import Alert, Delivery, SymptomReport
from alerts.reports import submit_report
from tests.faults.helpers import delivery_ids_received
from tests.processes import settled, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


class Abort(Exception):
    pass


def test_a_report_rolled_back_after_submit_pages_no_one(
    clinician, make_patient, make_procedure, fault_worker, smtp_server, broker
):
    procedure = make_procedure(patient=make_patient(responsible_clinician=clinician))
    worker = fault_worker(env={"EMAIL_URL": smtp_server.url})

    def tasks_received() -> int:
        lines = worker.log_path.read_text().splitlines()
        return sum("alerts.tasks.deliver_task[" in line and line.endswith("received") for line in lines)

    def report():
        return submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])

    # The whole transaction rolls back after the report and its page were written.
    with pytest.raises(Abort), transaction.atomic():
        report()
        assert Delivery.objects.count() == 1
        raise Abort
    # Only a savepoint rolls back; the outer transaction commits.
    with transaction.atomic():
        with pytest.raises(Abort), transaction.atomic():
            report()
            raise Abort
    assert (SymptomReport.objects.count(), Alert.objects.count(), Delivery.objects.count()) == (0, 0, 0)

    committed = report()
    page = Delivery.objects.get(alert__first_report=committed)
    wait_until(lambda: smtp_server.messages, timeout=30, message="the committed report's page")
    settled(lambda: len(smtp_server.messages), quiet_seconds=1.5, timeout=10, message="the SMTP server")
    assert delivery_ids_received(smtp_server) == {page.pk: 1}
    assert tasks_received() == 1, "a task was enqueued for a rolled-back page"
