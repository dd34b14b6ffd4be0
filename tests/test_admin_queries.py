"""Query discipline on staff pages: every admin changelist of our two apps (for a superuser, who is shown
every row; clinic scoping only ever narrows the querysets), the worklist, the patient overview and the
KPI page run the same, measured number of queries with 10 rows as with 200. The changelists come from
the admin registry, so a new one is measured here or fails until it is."""

import secrets

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertEvent, CheckIn, Delivery, DigestRun, EscalationPolicy, ReviewTask, WebhookEndpoint
from patients.models import (
    ApiClient,
    CheckpointEvent,
    Clinic,
    ClinicMembership,
    Patient,
    Procedure,
    RiskAssessment,
    StaffRole,
    TierDropReview,
    TreatedLevel,
)
from tests.builders import bulk_alerts, bulk_checkpoints, bulk_patients, bulk_procedures, bulk_staff

pytestmark = pytest.mark.django_db

# Measured (changelists as a superuser, pages as a coordinator); a change here is a change in what each
# page costs. Each page reads the user's grants (`patients.access`) once, in one query.
CHANGELIST_QUERIES = {
    "admin:alerts_alert_changelist": 10,
    "admin:alerts_alertevent_changelist": 10,
    "admin:alerts_checkin_changelist": 10,
    "admin:alerts_delivery_changelist": 11,
    "admin:alerts_digestrun_changelist": 9,
    "admin:alerts_escalationpolicy_changelist": 12,  # + 3 for the empty-step warnings (HAZ-44)
    "admin:alerts_reviewtask_changelist": 10,
    "admin:alerts_symptomreport_changelist": 9,
    "admin:alerts_webhookendpoint_changelist": 9,
    "admin:patients_apiclient_changelist": 10,
    "admin:patients_checkpoint_changelist": 12,
    "admin:patients_checkpointevent_changelist": 10,
    "admin:patients_clinic_changelist": 8,
    "admin:patients_historicalapiclient_changelist": 10,
    "admin:patients_historicalclinicmembership_changelist": 10,
    "admin:patients_historicalpatient_changelist": 10,
    "admin:patients_historicalprocedure_changelist": 10,
    "admin:patients_historicaltreatedlevel_changelist": 10,
    "admin:patients_patient_changelist": 9,
    "admin:patients_procedure_changelist": 11,
    "admin:patients_tierdropreview_changelist": 9,
}
PAGE_QUERIES = {"worklist": 27, "patient overview": 17, "KPI page": 12, "KPI CSV": 10}


def changelists() -> list[str]:
    return sorted(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        for model in admin.site._registry
        if model._meta.app_label in {"patients", "alerts"}
    )


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root_admin", "root@example.invalid", "x-long-password")


@pytest.fixture
def busy_patient(make_procedure):
    """A patient with a recorded (assessed and planned) procedure, who gets many more rows below."""
    return make_procedure().patient


def add_rows(*, clinic, patient, count: int) -> None:
    """`count` more of every row a staff page lists: clinics with their settings, API clients, staff, and
    patients of `clinic` with their follow-up and audit records (made by one of the new staff); and `count`
    more procedures of `patient` with theirs (their alerts resolved: a patient has one open alert per code)."""
    add_clinics(count)
    add_api_clients(clinic, count)
    users = bulk_staff(
        clinic=clinic, role=StaffRole.COORDINATOR, count=count, prefix=f"staff{ClinicMembership.objects.count()}-"
    )
    staff = users[0]
    patients = bulk_patients(clinic=clinic, count=count)
    theirs = bulk_procedures(patients=patients)
    mine = bulk_procedures(patients=[patient] * count)
    add_follow_up(theirs, alert_state="open", by=staff)
    add_follow_up(mine, alert_state="resolved", by=staff)
    bulk_alerts(procedures=theirs, code="RF-02", state="acknowledged")  # the worklist's acknowledged section
    now = timezone.now()
    ReviewTask.objects.bulk_create(
        ReviewTask(patient=p, clinic=clinic, code="SO-2", action="Review", source="S0", due_at=now) for p in patients
    )
    TierDropReview.objects.bulk_create(
        TierDropReview(procedure=p, clinic=clinic, tier_from="high", tier_to="elevated", reason="DXA") for p in theirs
    )
    Delivery.objects.bulk_create(
        Delivery(
            kind="digest",
            cause=f"bulk:{p.pk}",
            recipient="x@example.invalid",
            clinic=clinic,
            next_attempt_at=now,
            state="failed",
        )
        for p in theirs
    )
    ClinicMembership.history.bulk_history_create(ClinicMembership.objects.filter(user__in=users), default_user=staff)
    Patient.history.bulk_history_create(patients, default_user=staff)
    Procedure.history.bulk_history_create(theirs + mine, default_user=staff)
    levels = TreatedLevel.objects.filter(procedure__in=theirs + mine)
    TreatedLevel.history.bulk_history_create(levels, default_user=staff)


def add_clinics(count: int) -> None:
    """`count` more clinics, each with an escalation policy, a webhook endpoint and a digest run."""
    first = Clinic.objects.count()
    clinics = Clinic.objects.bulk_create(
        Clinic(
            name=f"Clinic {n}",
            slug=f"clinic-{n}",
            time_zone="Europe/London",
            phone="+44 20 0000 0002",
            email=f"spine@clinic-{n}.invalid",
        )
        for n in range(first, first + count)
    )
    now = timezone.now()
    EscalationPolicy.objects.bulk_create(
        EscalationPolicy(clinic=c, tier="emergency", steps=[{"after_minutes": 0, "notify": "coordinators"}])
        for c in clinics
    )
    WebhookEndpoint.objects.bulk_create(
        WebhookEndpoint(clinic=c, url="https://ehr.example.invalid/hook", secret="whsec_x") for c in clinics
    )
    DigestRun.objects.bulk_create(
        DigestRun(clinic=c, local_date=now.date(), since=now, until=now, missed_count=1) for c in clinics
    )


def add_api_clients(clinic, count: int) -> None:
    clients = ApiClient.objects.bulk_create(
        ApiClient(name=f"EHR {n}", scopes=["read"], token_hash=secrets.token_hex(32), token_prefix=f"kf_{n}")
        for n in range(count)
    )
    ApiClient.clinics.through.objects.bulk_create(
        ApiClient.clinics.through(apiclient=c, clinic=clinic) for c in clients
    )
    ApiClient.history.bulk_history_create(clients)


def add_follow_up(procedures: list, *, alert_state: str, by) -> None:
    """For each procedure: an incomplete risk assessment, a due checkpoint and its planned event, a report
    and its alert (in `alert_state`) with its raised event, and a check-in waiting for a call; the events
    were caused by staff user `by`."""
    RiskAssessment.objects.bulk_create(
        RiskAssessment(
            procedure=p,
            tier="standard",
            pain_points=0,
            fracture_points=0,
            missing=["bmi"],
            protocol_version="2026.1",
            change_reason="recorded",
        )
        for p in procedures
    )
    checkpoints = bulk_checkpoints(procedures=procedures)
    CheckpointEvent.objects.bulk_create(CheckpointEvent(checkpoint=c, kind="planned", by=by) for c in checkpoints)
    alerts = bulk_alerts(procedures=procedures, state=alert_state)
    AlertEvent.objects.bulk_create(AlertEvent(alert=a, kind="raised", by=by) for a in alerts)
    CheckIn.objects.bulk_create(
        CheckIn(patient=p.patient, procedure=p, reason="CP-01", state="call_needed") for p in procedures
    )


def assert_fixed_queries(client, url: str, expected: int, django_assert_num_queries, rows) -> None:
    client.get(url)  # the first request fills process-wide caches (content types, templates)
    for count in (10, 190):
        rows(count)
        with django_assert_num_queries(expected):
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)


@pytest.mark.parametrize("name", changelists())
def test_changelist_runs_the_same_queries_for_10_and_200_rows(
    name, client, superuser, clinic, busy_patient, django_assert_num_queries
):
    assert name in CHANGELIST_QUERIES, f"{name} is a changelist nobody has measured: add it to CHANGELIST_QUERIES"
    client.force_login(superuser)

    def rows(count):
        add_rows(clinic=clinic, patient=busy_patient, count=count)

    assert_fixed_queries(client, reverse(name), CHANGELIST_QUERIES[name], django_assert_num_queries, rows)
    assert client.get(reverse(name)).context["cl"].result_count >= 200


def page_url(page: str, patient) -> str:
    return {
        "worklist": reverse("admin:index"),
        "patient overview": reverse("admin:patient-overview", args=[patient.pk]),
        "KPI page": reverse("kpis"),
        "KPI CSV": reverse("kpis") + "?format=csv",
    }[page]


def rows_shown(page: str, response) -> int:
    """How many of the added rows the page counted or listed."""
    if page == "worklist":  # every section counts all its rows and shows one page of them
        return min(section.page.paginator.count for section in response.context["pages"].values())
    if page == "patient overview":
        return len(response.context["timeline"])
    if page == "KPI page":
        return sum(tier.raised for tier in response.context["report"].ack_times)
    return len(response.content.splitlines())


@pytest.mark.parametrize("page", list(PAGE_QUERIES))
def test_staff_page_runs_the_same_queries_for_10_and_200_rows(
    page, client, coordinator, clinic, busy_patient, django_assert_num_queries
):
    url = page_url(page, busy_patient)
    client.force_login(coordinator)

    def rows(count):
        add_rows(clinic=clinic, patient=busy_patient, count=count)

    assert_fixed_queries(client, url, PAGE_QUERIES[page], django_assert_num_queries, rows)
    assert rows_shown(page, client.get(url)) >= {"KPI CSV": 10}.get(page, 200)
