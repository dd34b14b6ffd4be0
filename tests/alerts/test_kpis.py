"""Programme KPIs: a hand-computed cohort, the same numbers in the CSV, clinic isolation and a fixed
number of queries.

The cohort (clinic in Europe/London, "now" = 2027-09-01 12:00 UTC, period 2026-01-01 to 2027-08-31).
F = fracture diagnosis date; every procedure is at L4 (not the TL junction) on a 75-year-old, so all
stay at the standard tier and plan CP-01…CP-12 plus CP-15 twice (at CP-04 and CP-12).

| | performed | F | F+84 | F+112 | day 395 |
|---|---|---|---|---|---|
| P1 | 2026-03-02 | 2026-02-23 | 2026-05-18 | 2026-06-15 | 2027-04-01 |
| P2 | 2026-04-01 | unknown (= 2026-04-01) | 2026-06-24 | 2026-07-22 | 2027-05-01 |
| P3 | 2026-05-04 | 2026-05-01 | 2026-07-24 | 2026-08-21 | 2027-06-03 |
| P4 | 2026-06-01 | 2026-05-20 | 2026-08-12 | 2026-09-09 | 2027-07-01 |
| P5 | 2027-06-01 | 2027-05-25 | 2027-08-17 | 2027-09-14 | 2028-06-30 |
| P6 | 2027-08-20 | 2027-08-18 | 2027-11-10 | 2027-12-08 | 2028-09-18 |

P7 (performed 2025-12-15, before the period) and a procedure of another clinic meet every clock
and must not be counted.
"""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.escalation import acknowledge_alert, sweep_escalations
from alerts.kpis import compute
from alerts.models import Alert, AlertEvent, SymptomReport
from alerts.reports import submit_report
from patients.models import Checkpoint, Patient, Procedure
from patients.services import (
    complete_checkpoint,
    record_procedure,
    register_patient,
    sweep_checkpoint_states,
    update_patient,
)
from tests.builders import birth_date_for_age

NOW = datetime(2027, 9, 1, 12, 0, tzinfo=UTC)
PERIOD = {"start": "2026-01-01", "end": "2027-08-31"}
LEVELS = [{"level": "L4"}]


def at(year, month, day, hour=12, minute=0):
    return time_machine.travel(datetime(year, month, day, hour, minute, tzinfo=UTC), tick=False)


def checkpoint(procedure, code) -> Checkpoint:
    return Checkpoint.objects.get(procedure=procedure, code=code)


def complete(procedure, code, **outcome):
    return complete_checkpoint(checkpoint=checkpoint(procedure, code), **outcome)


def dxa(day):
    return {"dxa_t_score": Decimal("-2.0"), "dxa_date": day}


def medication(day):
    return {"medication_started": True, "medication_drug": "alendronate", "medication_started_on": day}


def raise_alert(procedure, red_flag) -> Alert:
    submit_report(procedure=procedure, source="api", pain_now=2, red_flags=[red_flag])
    return Alert.objects.get(procedure=procedure, code=red_flag)


def acknowledge(alert, user):
    acknowledge_alert(alert=alert, by=user, via="admin")


@pytest.fixture
def cohort(make_patient, make_procedure, coordinator, clinician, other_clinic):
    """The six procedures of the module docstring, their outcomes and their alerts. The clinic has a
    clinician, so each alert's first step pages someone and the coordinators' step comes when due."""
    p = {}
    with at(2025, 12, 15):
        p[7] = make_procedure(performed_on=date(2025, 12, 15), fracture_diagnosed_on=date(2025, 12, 10), levels=LEVELS)
    with at(2026, 1, 5):
        complete(p[7], "CP-06", **dxa(date(2026, 1, 5)))
    with at(2026, 3, 2):
        p[1] = make_procedure(performed_on=date(2026, 3, 2), fracture_diagnosed_on=date(2026, 2, 23), levels=LEVELS)
    with at(2026, 4, 1):
        # A DXA 304 days before the procedure: CP-06 is not planned.
        patient = make_patient(dxa_date=date(2025, 6, 1))
        p[2] = make_procedure(patient=patient, performed_on=date(2026, 4, 1), fracture_diagnosed_on=None, levels=LEVELS)
    with at(2026, 4, 20):
        complete(p[1], "CP-06", **dxa(date(2026, 4, 15)))
    with at(2026, 5, 4):
        p[3] = make_procedure(performed_on=date(2026, 5, 4), fracture_diagnosed_on=date(2026, 5, 1), levels=LEVELS)
    with at(2026, 5, 20):
        complete(p[1], "CP-07", **medication(date(2026, 5, 18)))
    with at(2026, 6, 1):
        p[4] = make_procedure(performed_on=date(2026, 6, 1), fracture_diagnosed_on=date(2026, 5, 20), levels=LEVELS)
        complete(p[2], "CP-07", medication_started=False, medication_not_started_reason="declined")
    with at(2026, 7, 2):
        complete(p[4], "CP-07", **medication(date(2026, 7, 1)))
    with at(2026, 8, 10):
        complete(p[3], "CP-06", **dxa(date(2026, 8, 5)))  # late: after F+84 = 2026-07-24
    with at(2026, 8, 28):
        complete(p[3], "CP-07", **medication(date(2026, 8, 25)))  # late: after F+112 = 2026-08-21
    with at(2027, 3, 5):
        complete(p[1], "CP-12", **medication(date(2026, 5, 18)))
    with at(2027, 4, 1):
        complete(p[2], "CP-12")  # not on medication
    with at(2027, 6, 1):
        p[5] = make_procedure(performed_on=date(2027, 6, 1), fracture_diagnosed_on=date(2027, 5, 25), levels=LEVELS)
    with at(2027, 6, 20):
        complete(p[5], "CP-04")  # early: the window opens on 2027-06-29
    with at(2027, 7, 1, 23, 30):
        # 00:30 on 2 July in London (BST): one day after CP-12's window_end of 2027-07-01.
        complete(p[4], "CP-12")  # no medication answer; the patient is on medication since 2026-07-01
    with at(2027, 7, 10):
        complete(p[5], "CP-06", **dxa(date(2027, 7, 8)))
    with at(2027, 8, 20):
        p[6] = make_procedure(performed_on=date(2027, 8, 20), fracture_diagnosed_on=date(2027, 8, 18), levels=LEVELS)

    # Alerts. EMERGENCY steps at 0, 10, 20 min; URGENT at 0, 120, 240 min (default policies).
    with at(2027, 6, 10, 10, 0):
        a1 = raise_alert(p[5], "RF-01")
    with at(2027, 6, 10, 10, 5):
        acknowledge(a1, coordinator)  # 5 min
    with at(2027, 6, 15, 8, 0):
        a3 = raise_alert(p[5], "RF-03")
    with at(2027, 6, 15, 8, 12):
        acknowledge(a3, coordinator)  # 12 min
    with at(2027, 7, 1, 10, 0):
        a4 = raise_alert(p[5], "RF-06")  # also triggers CP-16, window 2027-07-01…2027-07-15
    with at(2027, 7, 1, 11, 0):
        acknowledge(a4, coordinator)  # 60 min
    with at(2027, 8, 25, 9, 0):
        a2 = raise_alert(p[6], "RF-02")
    with at(2027, 8, 25, 9, 10):
        assert sweep_escalations(now=timezone.now()) == 1
    with at(2027, 8, 25, 9, 25):
        acknowledge(a2, coordinator)  # 25 min, escalated once
    with at(2027, 8, 26, 10, 0):
        a5 = raise_alert(p[6], "RF-08")
    with at(2027, 8, 26, 12, 0):
        assert sweep_escalations(now=timezone.now()) == 1
    with at(2027, 8, 26, 13, 30):
        acknowledge(a5, coordinator)  # 210 min, escalated once
    with at(2027, 8, 27, 10, 0):
        raise_alert(p[6], "RF-09")  # never acknowledged; CP-16 window 2027-08-27…2027-09-10
    with at(2027, 8, 27, 12, 0):
        assert sweep_escalations(now=timezone.now()) == 1
    with at(2027, 8, 27, 14, 0):
        assert sweep_escalations(now=timezone.now()) == 1  # escalated twice, counted once
    with at(2027, 8, 31, 23, 30):
        # 00:30 on 1 September in London: raised after the period.
        late = raise_alert(p[6], "RF-04")
    with at(2027, 8, 31, 23, 40):
        acknowledge(late, coordinator)

    with at(2027, 1, 4):
        other_patient = register_patient(
            clinic=other_clinic,
            mrn="OTHER1",
            given_name="Other",
            family_name="Clinic",
            birth_date=birth_date_for_age(75),
            time_zone="America/New_York",
        )
        p["other"] = record_procedure(
            patient=other_patient,
            levels=LEVELS,
            kind="kyphoplasty",
            performed_on=date(2027, 1, 4),
            fracture_diagnosed_on=date(2027, 1, 1),
        )
    with at(2027, 1, 20):
        complete(p["other"], "CP-06", **dxa(date(2027, 1, 18)))
    with at(2027, 2, 1, 15, 0):
        other_alert = raise_alert(p["other"], "RF-01")
    with at(2027, 2, 1, 15, 1):
        acknowledge(other_alert, None)

    with at(2027, 9, 1):
        sweep_checkpoint_states(now=NOW)
    return p


def get_page(client, user, **params):
    with time_machine.travel(NOW, tick=False):
        client.force_login(user)
        return client.get(reverse("kpis"), params)


def ratio(r) -> tuple:
    return (r.numerator, r.denominator, r.percent, r.in_progress)


@pytest.mark.django_db
def test_fracture_liaison_clocks_match_the_hand_count(client, cohort, coordinator):
    response = get_page(client, coordinator, **PERIOD)

    assert response.status_code == 200
    report = response.context["report"]
    assert report.procedures == 6  # P1…P6; P7 and the other clinic's are outside
    assert report.fracture_date_assumed == 1  # P2
    dxa, medication, year = report.fls
    # DXA by week 12: due P1…P5 (P6's F+84 = 2027-11-10 is ahead: in progress). Met: P1 (DXA
    # 2026-04-15 <= 2026-05-18), P2 (DXA 2025-06-01, within 2 years before), P5 (2027-07-08 <=
    # 2027-08-17). Not met: P3 (2026-08-05 > 2026-07-24), P4 (CP-06 missed). 3/5.
    assert (dxa.key, *ratio(dxa)) == ("dxa_by_week_12", 3, 5, Decimal("60.0"), 1)
    assert report.dxa_by_recent_scan == 1  # P2
    # Medication by week 16: due P1…P4 (P5's F+112 = 2027-09-14). Met: P1 (2026-05-18 <= 2026-06-15),
    # P4 (2026-07-01 <= 2026-09-09). Not met: P3 (2026-08-25 > 2026-08-21), P2 (reason). 2/4.
    assert (medication.key, *ratio(medication)) == ("medication_by_week_16", 2, 4, Decimal("50.0"), 2)
    # Documented reason not started: P2 only. 1/4.
    assert ratio(report.medication_reason_not_started) == (1, 4, Decimal("25.0"), 2)
    # On medication at week 52: due P1…P4 (day 395 passed). Met: P1 (CP-12 medication yes), P4 (CP-12
    # completed, patient on medication since 2026-07-01). Not met: P2 (not on medication), P3 (CP-12
    # missed). 2/4.
    assert (year.key, *ratio(year)) == ("on_medication_at_week_52", 2, 4, Decimal("50.0"), 2)
    assert [r.source for r in report.fls] == ["E8", "E8", "E8"]


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-36")
def test_kpis_recomputed_after_a_repeat_dxa_and_a_cp12_stopped_answer_keep_met_targets_and_count_stopped(cohort):
    clinic = cohort[1].patient.clinic
    period = {"start": date(2026, 1, 1), "end": date(2027, 8, 31)}
    before = [ratio(r) for r in compute(clinic=clinic, now=NOW, **period).fls]
    with at(2027, 9, 1, 12, 5):
        # P2's repeat DXA (its record now says 2027-08-20), and P1's repeat DXA at CP-13.
        p2 = Patient.objects.get(pk=cohort[2].patient_id)
        p2.dxa_date, p2.bmd_lowest_t_score = date(2027, 8, 20), Decimal("-1.9")
        update_patient(patient=p2, reason="repeat DXA")
        complete(cohort[1], "CP-13", **dxa(date(2027, 8, 30)))
        # P3 (on medication since 2026-08-25 by its record) answers at its 12-month review: stopped.
        complete(cohort[3], "CP-12", medication_started=False, medication_not_started_reason="stopped: side effects")
    assert Patient.objects.get(pk=cohort[3].patient_id).on_osteoporosis_med is True

    after = compute(clinic=clinic, now=NOW, **period)

    dxa_ratio, medication, year = after.fls
    assert [ratio(r) for r in after.fls] == before
    assert ratio(dxa_ratio) == (3, 5, Decimal("60.0"), 1)  # P2's first DXA still met the target
    assert after.dxa_by_recent_scan == 1
    assert ratio(year) == (2, 4, Decimal("50.0"), 2)  # P3's "stopped" is not on medication at week 52
    assert ratio(medication) == (2, 4, Decimal("50.0"), 2)


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-36")
def test_with_no_answer_at_cp12_the_record_as_it_stood_then_counts_not_a_later_change(cohort):
    """P4 completed CP-12 with no medication answer while on medication: a stop recorded months later
    does not change week 52."""
    clinic = cohort[1].patient.clinic
    with at(2027, 8, 30):
        p4 = Patient.objects.get(pk=cohort[4].patient_id)
        p4.on_osteoporosis_med, p4.osteoporosis_drug, p4.osteoporosis_med_started_on = False, "", None
        update_patient(patient=p4, reason="stopped in August 2027")

    report = compute(clinic=clinic, start=date(2026, 1, 1), end=date(2027, 8, 31), now=NOW)

    assert ratio(report.fls[2]) == (2, 4, Decimal("50.0"), 2)


@pytest.mark.django_db
def test_checkpoints_within_window_match_the_hand_count(client, cohort, coordinator):
    report = get_page(client, coordinator, **PERIOD).context["report"]

    # Closed windows on 2027-09-01: P1, P3, P4 14 each (CP-01…CP-12 and CP-15 twice), P2 13 (no CP-06),
    # P5 8 (CP-01…CP-06, CP-15 #1, CP-16), P6 1 (CP-01): 64.
    # Inside the window: P1 CP-06, CP-07, CP-12; P2 CP-07, CP-12; P4 CP-07; P5 CP-06: 7.
    # Outside: P3 CP-06 and CP-07 (late), P4 CP-12 (00:30 local the day after), P5 CP-04 (early).
    # 7/64 = 10.9375 %.
    assert ratio(report.window_overall) == (7, 64, Decimal("10.9"), None)
    by_code = {r.group: (r.numerator, r.denominator, r.percent) for r in report.window_by_code}
    assert by_code == {
        "CP-01": (0, 6, Decimal("0.0")),
        "CP-02": (0, 5, Decimal("0.0")),
        "CP-03": (0, 5, Decimal("0.0")),
        "CP-04": (0, 5, Decimal("0.0")),  # P5's early completion is outside
        "CP-05": (0, 5, Decimal("0.0")),
        "CP-06": (2, 4, Decimal("50.0")),  # P1, P5 of P1, P3, P4, P5
        "CP-07": (3, 4, Decimal("75.0")),  # P1, P2, P4 of P1…P4
        "CP-08": (0, 4, Decimal("0.0")),
        "CP-09": (0, 4, Decimal("0.0")),
        "CP-10": (0, 4, Decimal("0.0")),
        "CP-11": (0, 4, Decimal("0.0")),
        "CP-12": (2, 4, Decimal("50.0")),  # P1, P2; P3 missed, P4 late
        "CP-15": (0, 9, Decimal("0.0")),  # twice for P1…P4, once for P5
        "CP-16": (0, 1, Decimal("0.0")),  # P5's RF-06 imaging review
    }


@pytest.mark.django_db
def test_acknowledgement_medians_and_escalations_match_the_hand_count(client, cohort, coordinator):
    report = get_page(client, coordinator, **PERIOD).context["report"]

    acks = {a.tier: (a.acknowledged, a.raised, a.median_minutes) for a in report.ack_times}
    # EMERGENCY: 5, 12, 25 min -> median 12 (RF-04 at 00:30 on 1 September, local, is after the period).
    # URGENT: 60 and 210 min acknowledged, RF-09 never -> median (60 + 210) / 2 = 135.
    assert acks == {
        "emergency": (3, 3, Decimal("12.0")),
        "urgent": (2, 3, Decimal("135.0")),
        "routine": (0, 0, None),
    }
    escalated = {r.group: (r.numerator, r.denominator, r.percent) for r in report.escalations}
    # EMERGENCY: RF-02 only. URGENT: RF-08 once, RF-09 twice (one alert).
    assert escalated == {
        "emergency": (1, 3, Decimal("33.3")),
        "urgent": (2, 3, Decimal("66.7")),
        "routine": (0, 0, None),
    }


@pytest.mark.django_db
def test_page_shows_charts_definitions_and_sources_without_javascript(client, cohort, coordinator):
    response = get_page(client, coordinator, **PERIOD)

    html = response.content.decode()
    assert "<script" not in html.split('id="kpi-filter"')[1]
    charts = html.split('id="kpi-report"')[1].split('id="kpi-definitions"')[0].count("<svg")
    assert charts == 3 + 1 + 1 + 14 + 3 + 3  # FLS, reason, all checkpoints, 14 codes, ack, escalations
    assert '<rect width="60.0" height="10"' in html  # DXA by week 12
    assert "3 / 5" in html and "60.0 %" in html
    assert "counted as met" in html and "[DESIGN]" in html and "(E8)" in html
    assert "12.0 min" in html and "135.0 min" in html
    assert "format=csv" in html


@pytest.mark.django_db
def test_csv_export_has_the_same_numbers(client, cohort, coordinator):
    response = get_page(client, coordinator, **PERIOD, format="csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "kpis-northside-20260101-20270831.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {(row["clinic"], row["period_start"], row["period_end"]) for row in rows} == {
        ("northside", "2026-01-01", "2027-08-31")
    }
    numbers = {
        (row["kpi"], row["group"]): (row["numerator"], row["denominator"], row["percent"], row["in_progress"])
        for row in rows
    }
    assert numbers[("dxa_by_week_12", "")] == ("3", "5", "60.0", "1")
    assert numbers[("medication_by_week_16", "")] == ("2", "4", "50.0", "2")
    assert numbers[("medication_reason_not_started", "")] == ("1", "4", "25.0", "2")
    assert numbers[("on_medication_at_week_52", "")] == ("2", "4", "50.0", "2")
    assert numbers[("checkpoints_within_window", "")] == ("7", "64", "10.9", "")
    assert numbers[("checkpoints_within_window", "CP-07")] == ("3", "4", "75.0", "")
    assert numbers[("escalated", "urgent")] == ("2", "3", "66.7", "")
    assert numbers[("escalated", "routine")] == ("0", "0", "", "")
    medians = {row["group"]: row["median_minutes"] for row in rows if row["kpi"] == "median_time_to_acknowledge"}
    assert medians == {"emergency": "12.0", "urgent": "135.0", "routine": ""}
    sources = {row["kpi"]: row["source"] for row in rows}
    assert sources["dxa_by_week_12"] == "E8" and sources["checkpoints_within_window"] == "[DESIGN]"


@pytest.mark.django_db
def test_other_clinic_coordinator_sees_none_of_this_clinic_and_cannot_pick_it(
    client, cohort, clinic, other_clinic, other_clinic_coordinator
):
    response = get_page(client, other_clinic_coordinator, **PERIOD)

    assert response.status_code == 200
    report = response.context["report"]
    assert report.clinic == other_clinic
    assert clinic.name not in response.content.decode()
    assert [value for value, _ in response.context["form"].fields["clinic"].choices] == [other_clinic.pk]
    # Only the other clinic's own procedure (F 2027-01-01, DXA 2027-01-18) and alert are counted.
    assert report.procedures == 1
    assert ratio(report.fls[0]) == (1, 1, Decimal("100.0"), 0)
    assert {a.tier: a.raised for a in report.ack_times} == {"emergency": 1, "urgent": 0, "routine": 0}

    for fmt in ("", "csv"):
        picked = get_page(client, other_clinic_coordinator, clinic=clinic.pk, format=fmt, **PERIOD)
        assert picked.status_code == 400
        assert picked.context["report"] is None
        assert b"Northside" not in picked.content


@pytest.mark.django_db
def test_staff_without_a_clinic_are_refused_and_anonymous_users_sent_to_log_in(client, django_user_model):
    loner = django_user_model.objects.create_user(username="lone", password="x", is_staff=True)

    assert get_page(client, loner).status_code == 403
    client.logout()
    response = client.get(reverse("kpis"))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db
def test_default_period_is_the_last_twelve_months_in_the_clinic_time_zone(client, coordinator):
    report = get_page(client, coordinator).context["report"]

    assert (report.start, report.end) == (date(2026, 9, 2), date(2027, 9, 1))
    assert report.procedures == 0
    assert all(r.percent is None for r in report.fls)


@pytest.mark.django_db
def test_a_period_ending_before_it_starts_is_refused(client, coordinator):
    response = get_page(client, coordinator, start="2027-01-01", end="2026-01-01")

    assert response.status_code == 400
    assert response.context["report"] is None


def bulk_cohort(clinic, count: int, offset: int) -> None:
    """`count` procedures with two checkpoints and one acknowledged, escalated alert each, written in
    bulk: the page's queries must not depend on how many there are."""
    patients = Patient.objects.bulk_create(
        Patient(
            clinic=clinic,
            mrn=f"BULK{offset + n:05d}",
            given_name="Bulk",
            family_name="Patient",
            birth_date=date(1950, 1, 1),
            time_zone="Europe/London",
        )
        for n in range(count)
    )
    procedures = Procedure.objects.bulk_create(
        Procedure(
            patient=patient,
            kind="kyphoplasty",
            performed_on=date(2026, 6, 1),
            fracture_diagnosed_on=date(2026, 5, 20),
            protocol_version="2026.1",
        )
        for patient in patients
    )
    window = {
        "window_start": date(2026, 6, 1),
        "target_date": date(2026, 7, 30),
        "window_end": date(2026, 8, 12),
        "opens_at": datetime(2026, 5, 31, 23, 0, tzinfo=UTC),
        "due_at": datetime(2026, 7, 30, 8, 0, tzinfo=UTC),
        "closes_at": datetime(2026, 8, 12, 23, 0, tzinfo=UTC),
    }
    common = {"title": "t", "audience": "coordinator_task", "source": "E8", "protocol_version": "2026.1", **window}
    Checkpoint.objects.bulk_create(
        [
            Checkpoint(
                procedure=procedure,
                code="CP-06",
                state="completed",
                completed_at=datetime(2026, 7, 1, 12, tzinfo=UTC),
                dxa_date=date(2026, 7, 1),
                **common,
            )
            for procedure in procedures
        ]
        + [Checkpoint(procedure=procedure, code="CP-07", state="missed", **common) for procedure in procedures]
    )
    reports = SymptomReport.objects.bulk_create(
        SymptomReport(
            patient=procedure.patient, procedure=procedure, source="api", day=5, pain_now=2, protocol_version="2026.1"
        )
        for procedure in procedures
    )
    raised = datetime(2026, 6, 6, 10, tzinfo=UTC)
    alerts = Alert.objects.bulk_create(
        Alert(
            patient=report.patient,
            procedure=report.procedure,
            clinic=clinic,
            code="RF-01",
            tier="emergency",
            state="acknowledged",
            protocol_version="2026.1",
            rule_source="S0",
            action="a",
            first_report=report,
            last_report=report,
            first_seen_at=raised,
            last_seen_at=raised,
            policy=[],
            policy_started_at=raised,
            acknowledged_at=datetime(2026, 6, 6, 10, 30, tzinfo=UTC),
        )
        for report in reports
    )
    AlertEvent.objects.bulk_create(AlertEvent(alert=alert, kind="escalated", at=raised) for alert in alerts)


@pytest.mark.django_db
def test_page_and_csv_run_the_same_number_of_queries_for_10_and_500_procedures(
    client, clinic, coordinator, django_assert_num_queries
):
    def count_queries(**params) -> int:
        with time_machine.travel(NOW, tick=False):
            client.force_login(coordinator)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(reverse("kpis"), {**PERIOD, **params})
            assert response.status_code == 200
        return len(queries)

    bulk_cohort(clinic, 10, offset=0)
    page_10, csv_10 = count_queries(), count_queries(format="csv")
    report = get_page(client, coordinator, **PERIOD).context["report"]
    assert ratio(report.fls[0])[:2] == (10, 10)
    bulk_cohort(clinic, 490, offset=10)
    page_500, csv_500 = count_queries(), count_queries(format="csv")
    report = get_page(client, coordinator, **PERIOD).context["report"]

    assert ratio(report.fls[0])[:2] == (500, 500)
    assert ratio(report.window_overall)[:2] == (500, 1000)
    assert [a.raised for a in report.ack_times] == [500, 0, 0]
    assert (page_500, csv_500) == (page_10, csv_10)
    with time_machine.travel(NOW, tick=False), django_assert_num_queries(3):
        compute(clinic=clinic, start=date(2026, 1, 1), end=date(2027, 8, 31))
