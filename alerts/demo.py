"""What the demo of `make run` shows on its first visit: open alerts in two tiers, an acknowledged
one and phone-call tasks, made once through the same services as real reports (a coordinator's
phone entries), for the demo clinic only."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from patients.demo import DEMO_CLINIC_SLUG
from patients.models import Patient

from . import escalation
from .models import Alert, CheckIn, CheckInState
from .reports import submit_report

# (demo MRN, red flags, pain now): each a phone report entered by the demo coordinator.
DEMO_REPORTS = [
    ("DEMO0003", ["RF-02"], 8),  # emergency
    ("DEMO0005", ["RF-05"], 6),  # urgent
    ("DEMO0008", ["RF-08"], 5),  # urgent
    ("DEMO0011", ["RF-06"], 7),  # urgent, acknowledged below
]
ACKNOWLEDGED = "DEMO0011"
CALL_TASKS = ["DEMO0004", "DEMO0012", "DEMO0018"]  # check-ins that went unanswered: a call each


@transaction.atomic
def seed_demo_alerts() -> int:
    """The demo's alerts and call tasks, once (none are added while the demo clinic has an alert).
    Returns the number of alerts raised."""
    if Alert.objects.filter(clinic__slug=DEMO_CLINIC_SLUG).exists():
        return 0
    coordinator = get_user_model().objects.get(username="coordinator")
    clinician = get_user_model().objects.get(username="clinician")
    patients = {p.mrn: p for p in Patient.objects.filter(clinic__slug=DEMO_CLINIC_SLUG).prefetch_related("procedures")}
    for mrn, flags, pain in DEMO_REPORTS:
        procedure = patients[mrn].procedures.first()
        submit_report(procedure=procedure, source="phone", red_flags=flags, pain_now=pain, entered_by=coordinator)
    alert = Alert.objects.filter(patient=patients[ACKNOWLEDGED]).first()
    escalation.acknowledge_alert(alert=alert, by=clinician, via="demo", note="Called the patient; imaging booked.")
    for mrn in CALL_TASKS:
        patient = patients[mrn]
        CheckIn.objects.create(
            patient=patient,
            procedure=patient.procedures.first(),
            reason="CP-10",
            state=CheckInState.CALL_NEEDED,
            invitations_sent=2,
            next_action_at=None,
            updated_at=timezone.now(),
        )
    return len(DEMO_REPORTS)
