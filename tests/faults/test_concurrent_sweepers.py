"""Two beat schedulers and sixteen sweepers at once: every reminder, page, invitation and digest is written
once and sent once. Uniqueness comes from row locks and a constraint, never from there being one beat."""

import subprocess
import sys
import time
from datetime import time as clock_time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from alerts.checkins import sweep_checkins
from alerts.digests import sweep_digests
from alerts.escalation import sweep_escalations
from alerts.models import Alert, AlertEvent, CheckIn, Delivery, DeliveryKind, DeliveryState, DigestRun
from alerts.outbox import sweep_deliveries
from alerts.reminders import sweep_reminders
from alerts.reports import submit_report
from patients.models import Checkpoint, StaffRole
from patients.protocol import get_protocol
from tests.builders import bulk_staff
from tests.faults.helpers import delivery_ids_received, run_together
from tests.processes import ROOT, django_env, settled, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PROCEDURES = 30  # each: one CP-06 reminder and one extra check-in
ALERTS = 10  # each: one escalation to the coordinators
COORDINATORS = 2
RACE_SECONDS = 3
SWEEPS = [name for name in settings.CELERY_BEAT_SCHEDULE if name.startswith("sweep-")]


def ticks(log) -> int:
    """How often the beat writing `log` has sent every sweep of the schedule."""
    text = log.read_text()
    return min(text.count(f"Sending due task {name} ") for name in SWEEPS)


@pytest.fixture
def beats(broker, tmp_path):
    """beats(n): n `celery beat` processes, each ticking the project's sweeps every second."""
    started: list[tuple[subprocess.Popen, object]] = []

    def start(count: int) -> list:
        for n in range(count):
            log_path = tmp_path / f"beat-{n}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tests.faults.fastbeat", "beat", "--loglevel=INFO"]
                + ["--schedule", str(tmp_path / f"beat-{n}-schedule")],
                cwd=ROOT,
                env=django_env(REDIS_URL=broker.url, CELERY_BROKER_URL=broker.url, FAST_BEAT_SECONDS="1"),
                stdout=open(log_path, "ab"),  # noqa: SIM115 - closed with the process
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            started.append((process, log_path))
        return [log for _, log in started]

    yield start
    for process, _ in started:
        process.kill()
        process.wait(timeout=10)


def test_two_beats_and_sixteen_sweepers_write_and_send_each_message_once(
    clinic, clinician, make_patient, make_procedure, fault_worker, beats, smtp_server
):
    clinic.quiet_hours_start = clinic.quiet_hours_end = clock_time(0, 0)  # no quiet hours: due means sent
    clinic.digest_time = clock_time(0, 0)
    clinic.save()
    bulk_staff(clinic=clinic, role=StaffRole.COORDINATOR, count=COORDINATORS, prefix="coord")
    fracture = timezone.localdate() - timedelta(days=70)
    procedures = [
        make_procedure(
            patient=make_patient(responsible_clinician=clinician),
            performed_on=fracture + timedelta(days=2),
            fracture_diagnosed_on=fracture,
        )
        for _ in range(PROCEDURES)
    ]
    for procedure in procedures[:ALERTS]:
        submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    # Nothing is due until every sweeper runs: then the reminders, check-ins and escalations all are.
    Checkpoint.objects.update(next_reminder_at=None)
    reminders = list(Checkpoint.objects.filter(code="CP-06").values_list("id", flat=True))
    checkins = [
        CheckIn.objects.create(patient=p.patient, procedure=p, reason="PAIN_DAY14", next_action_at=None).pk
        for p in procedures
    ]
    alerts = list(Alert.objects.values_list("id", flat=True))
    assert (len(reminders), len(checkins), len(alerts)) == (PROCEDURES, PROCEDURES, ALERTS)

    fault_worker(concurrency=4, env={"EMAIL_URL": smtp_server.url})
    logs = beats(2)
    wait_until(
        lambda: all(ticks(log) >= 1 for log in logs if log.exists()),
        timeout=60,
        message="both beats ticking every sweep",
    )

    due = timezone.now() + timedelta(seconds=1)
    Checkpoint.objects.filter(id__in=reminders).update(next_reminder_at=due)
    CheckIn.objects.filter(id__in=checkins).update(next_action_at=due)
    Alert.objects.filter(id__in=alerts).update(next_escalation_at=due)

    def repeatedly(sweep):
        def run():
            time.sleep(max(0.0, (due - timezone.now()).total_seconds()))
            while timezone.now() < due + timedelta(seconds=RACE_SECONDS):
                sweep(now=timezone.now())

        return run

    sweepers = [sweep_reminders, sweep_escalations, sweep_checkins, sweep_deliveries, sweep_digests]
    run_together([repeatedly(sweep) for sweep in sweepers for _ in range(4)])
    for log in logs:  # the beats kept ticking through the race
        assert ticks(log) >= RACE_SECONDS

    wait_until(  # a day's reminder e-mail waits its gather minutes for the day's other items
        lambda: not Delivery.objects.exclude(state=DeliveryState.SENT).exists(),
        timeout=90 + 60 * get_protocol(clinic.protocol_version).patient_messages.gather_minutes,
        message="every delivery sent",
    )
    settled(lambda: len(smtp_server.messages), quiet_seconds=1.5, timeout=30, message="the SMTP server")

    for checkpoint in Checkpoint.objects.filter(id__in=reminders):
        contexts = Delivery.objects.filter(checkpoint=checkpoint).values_list("context", flat=True)
        items = [item for context in contexts for item in context["items"]]
        assert items == [f"reminder:{checkpoint.pk}:1"] and checkpoint.reminders_sent == 1, items
    for checkin in CheckIn.objects.filter(id__in=checkins):
        causes = list(Delivery.objects.filter(checkin=checkin).values_list("cause", flat=True))
        assert causes == [f"checkin:{checkin.pk}:1"] and checkin.invitations_sent == 1, causes
    for alert in Alert.objects.filter(id__in=alerts):
        assert alert.level == 1
        assert AlertEvent.objects.filter(alert=alert, kind=AlertEvent.Kind.ESCALATED).count() == 1
        pages = Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT)
        levels = sorted(cause.rsplit(":", 1)[1] for cause in pages.values_list("cause", flat=True))
        assert levels == ["0"] + ["1"] * COORDINATORS, levels
    assert DigestRun.objects.filter(clinic=clinic).count() == 1
    assert Delivery.objects.filter(kind=DeliveryKind.DIGEST).count() == COORDINATORS

    received = delivery_ids_received(smtp_server)
    assert received == dict.fromkeys(Delivery.objects.values_list("id", flat=True), 1)
