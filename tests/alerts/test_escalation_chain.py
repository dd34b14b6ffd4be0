"""An escalation chain never pages no one and never falls silent: an empty step passes on to the next
at once, a chain with no one left pages everyone who may act on the clinic's alerts, the last step is
paged again until someone acknowledges, and the health page, the worklist and the clinic admin see
what needs a person."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from alerts.escalation import acknowledge_alert, sweep_escalations
from alerts.models import Alert, AlertEvent, Delivery, DeliveryKind
from alerts.reports import submit_report
from patients.models import ClinicMembership, StaffRole
from tests.builders import make_patient, make_procedure, make_staff


def raise_emergency(procedure) -> Alert:
    submit_report(procedure=procedure, source="api", pain_now=4, red_flags=["RF-01"])
    return Alert.objects.get(patient=procedure.patient)


def paged(alert) -> list[tuple[str, str]]:
    """(recipient, cause suffix after the policy start) of each page of `alert`, in order."""
    rows = Delivery.objects.filter(alert=alert, kind=DeliveryKind.ALERT).order_by("id")
    return [(row.recipient, row.cause.split(":", 3)[3]) for row in rows]


@pytest.fixture
def procedure(make_patient, make_procedure):
    """A patient with no responsible clinician of their own."""
    return make_procedure(patient=make_patient(), performed_on=timezone.localdate() - timedelta(days=5))


@pytest.fixture
def on_call(clinic):
    user = make_staff(username="dr_oncall", clinic=clinic, role=StaffRole.CLINICIAN)
    ClinicMembership.objects.filter(user=user).update(on_call=True)
    return user


@pytest.fixture
def unreachable(clinic):
    """Clinicians who cannot be paged: one deactivated, one without an e-mail address."""
    gone = make_staff(username="dr_gone", clinic=clinic, role=StaffRole.CLINICIAN, is_active=False)
    silent = make_staff(username="dr_silent", clinic=clinic, role=StaffRole.CLINICIAN)
    type(silent).objects.filter(pk=silent.pk).update(email="")
    return [gone, silent]


# --- HAZ-44: a step with no recipient ----------------------------------------------------------


@pytest.mark.hazard("HAZ-44")
@pytest.mark.django_db
def test_a_step_with_no_one_to_page_passes_on_to_the_next_step_at_once_and_says_why(
    procedure, coordinator, unreachable
):
    alert = raise_emergency(procedure)

    assert paged(alert) == [(coordinator.email, "1")]  # step 2, at once, not 10 minutes later
    alert.refresh_from_db()
    assert alert.level == 1 and alert.nobody_paged_at is None
    assert alert.next_escalation_at == alert.policy_started_at + timedelta(minutes=20)
    empty = alert.events.get(kind=AlertEvent.Kind.STEP_EMPTY)
    assert empty.data == {"level": 0, "notify": "responsible_clinician", "recipients": 0}
    assert "passing on to the next step" in empty.note
    assert alert.events.get(kind=AlertEvent.Kind.NOTIFIED).data["recipients"] == 1


@pytest.mark.hazard("HAZ-44")
@pytest.mark.django_db
def test_a_chain_with_no_one_left_pages_everyone_who_may_act_on_the_clinics_alerts(procedure, clinic, unreachable):
    admin = make_staff(username="adele_admin", clinic=clinic, role=StaffRole.CLINIC_ADMIN)
    make_staff(username="audrey_auditor", clinic=clinic, role=StaffRole.AUDITOR)  # may not act: not paged

    alert = raise_emergency(procedure)

    assert paged(alert) == [(admin.email, "2")]
    steps = alert.events.filter(kind=AlertEvent.Kind.STEP_EMPTY).order_by("id")
    assert [event.data["notify"] for event in steps] == ["responsible_clinician", "coordinators", "on_call"]
    notified = alert.events.get(kind=AlertEvent.Kind.NOTIFIED)
    assert notified.data == {"level": 2, "notify": "clinic", "recipients": 1}


@pytest.mark.hazard("HAZ-44")
@pytest.mark.django_db
def test_an_alert_nobody_could_be_paged_for_shows_on_the_health_page_and_the_worklist_and_is_tried_again(
    client, procedure, clinic, unreachable
):
    alert = raise_emergency(procedure)

    alert.refresh_from_db()
    assert paged(alert) == [] and alert.nobody_paged_at is not None
    assert alert.events.filter(kind=AlertEvent.Kind.NOBODY_PAGED).count() == 1
    assert client.get("/health/").json()["alerts"]["nobody_paged"] == 1
    client.force_login(unreachable[1])  # can read the worklist, cannot be paged
    worklist = client.get(reverse("admin:index")).content.decode()
    assert "Nobody could be paged" in worklist

    coordinator = make_staff(username="late_coordinator", clinic=clinic, role=StaffRole.COORDINATOR)
    sweep_escalations(now=alert.next_escalation_at)  # the repeat finds someone now
    alert.refresh_from_db()
    assert alert.nobody_paged_at is None and paged(alert) == [(coordinator.email, "2:r1")]
    assert client.get("/health/").json()["alerts"]["nobody_paged"] == 0


@pytest.mark.hazard("HAZ-44")
@pytest.mark.django_db
def test_the_clinic_admin_is_warned_of_every_step_that_would_page_no_one(client, clinic, coordinator, other_clinic):
    admin = make_staff(username="adele_admin", clinic=clinic, role=StaffRole.CLINIC_ADMIN)
    make_staff(username="other_admin", clinic=other_clinic, role=StaffRole.CLINIC_ADMIN)
    client.force_login(admin)

    policies = client.get(reverse("admin:alerts_escalationpolicy_changelist"))
    warnings = [str(message) for message in policies.context["messages"]]
    worklist = client.get(reverse("admin:index")).content.decode()

    assert policies.status_code == 200
    on_call_gap = f"{clinic.name}: Emergency alerts, step 3 (on call): no active member with an e-mail address"
    clinician_gap = f"{clinic.name}: Routine alerts, step 1 (responsible clinician): no active member"
    assert any(text.startswith(on_call_gap) for text in warnings)
    assert any(text.startswith(clinician_gap) for text in warnings)
    assert not any("coordinators" in text for text in warnings)  # Charlie is a coordinator with an e-mail
    assert not any(other_clinic.name in text for text in warnings)  # not this admin's clinic
    assert 'id="chain-gaps"' in worklist and "Emergency alerts, step 3 (on call)" in worklist


# --- HAZ-45: an exhausted chain -----------------------------------------------------------------


@pytest.mark.hazard("HAZ-45")
@pytest.mark.django_db
def test_the_last_step_is_paged_again_at_its_interval_until_acknowledged_and_the_health_page_counts_it(
    client, make_patient, make_procedure, clinician, coordinator, on_call
):
    procedure = make_procedure(
        patient=make_patient(responsible_clinician=clinician), performed_on=timezone.localdate() - timedelta(days=5)
    )
    alert = raise_emergency(procedure)
    start = alert.policy_started_at
    for minutes in (10, 20):
        sweep_escalations(now=start + timedelta(minutes=minutes))
    assert client.get("/health/").json()["alerts"]["chain_exhausted_unacknowledged"] == 1

    assert sweep_escalations(now=start + timedelta(minutes=29)) == 0
    assert sweep_escalations(now=start + timedelta(minutes=30)) == 1  # ESC-EMERGENCY repeat_minutes = 10
    assert sweep_escalations(now=start + timedelta(minutes=45)) == 1

    assert paged(alert)[2:] == [(on_call.email, "2"), (on_call.email, "2:r1"), (on_call.email, "2:r2")]
    repeats = alert.events.filter(kind=AlertEvent.Kind.ESCALATED, data__repeat__isnull=False)
    assert [event.data["repeat"] for event in repeats] == [1, 2]
    alert.refresh_from_db()
    assert alert.next_escalation_at == start + timedelta(minutes=55)  # counted from the last repeat

    acknowledge_alert(alert=alert, by=on_call, via="admin")
    assert sweep_escalations(now=start + timedelta(hours=3)) == 0
    assert len(paged(alert)) == 5
    assert client.get("/health/").json()["alerts"]["chain_exhausted_unacknowledged"] == 0


@pytest.mark.hazard("HAZ-45")
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_racing_page_each_repeat_exactly_once(clinic, coordinator, on_call):
    """Two beat ticks (or two beats) sweep the same due alerts at the same moment, one alert per batch so
    that they interleave: every alert is paged once for its first repeat, never twice, and no sweep fails."""
    alerts = []
    for number in range(12):
        patient = make_patient(clinic=clinic, number=900 + number)
        alerts.append(raise_emergency(make_procedure(patient=patient, performed_on=timezone.localdate())))
    last = timezone.now() - timedelta(minutes=10)
    Alert.objects.update(level=2, next_escalation_at=last)
    Delivery.objects.all().delete()
    due = timezone.now()
    start, results, failures = threading.Barrier(2), [], []

    def sweep():
        try:
            start.wait(timeout=10)
            results.append(sweep_escalations(now=due, batch_size=1))
        except Exception as exc:  # reported by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert sum(results) == len(alerts)
    for alert in alerts:
        assert paged(alert) == [(on_call.email, "2:r1")]
        alert.refresh_from_db()
        assert alert.repeats == 1 and alert.next_escalation_at == due + timedelta(minutes=10)
