"""Tier inputs from every path (spec v0.2 §2): DXA results kept as history, HU at any level, medication
without a start date, day-14 pain from any report for the cleft rule, "no medication by week 16" on the
patient's local date, and a lower tier that waits for a clinician while a higher one applies at once."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from alerts.reports import submit_report
from patients.models import Checkpoint, CheckpointState, DxaResult, PainReading, Patient, TierDropReview
from patients.services import (
    complete_checkpoint,
    current_tier,
    sweep_medication_deadlines,
    update_patient,
)
from tests.builders import bearer_client, birth_date_for_age, make_api_token

pytestmark = pytest.mark.django_db


def days_ago(days):
    return timezone.localdate() - timedelta(days=days)


def assessment(procedure):
    return procedure.risk_assessments.get(is_current=True)


def cancelled(procedure) -> int:
    """Intensified checkpoints cancelled (a DXA done after the procedure drops CP-06 from the plan)."""
    intensified = Checkpoint.objects.filter(procedure=procedure, code__startswith="INT-")
    return intensified.filter(state=CheckpointState.CANCELLED).count()


def open_intensified(procedure) -> set[int]:
    return set(
        Checkpoint.objects.open().filter(procedure=procedure, code__startswith="INT-").values_list("id", flat=True)
    )


@pytest.fixture
def high_by_bone(make_patient, make_procedure):
    """Age 82, T-score −3.6 from a DXA 800 days ago, L1 treated: fracture points 4, HIGH. CP-06 is due
    (no DXA in the last two years)."""
    patient = make_patient(
        birth_date=birth_date_for_age(82), bmd_lowest_t_score=Decimal("-3.6"), dxa_date=days_ago(800)
    )
    procedure = make_procedure(patient=patient, performed_on=days_ago(5), fracture_diagnosed_on=days_ago(10))
    assert (current_tier(procedure), assessment(procedure).fracture_points) == ("high", 4)
    return procedure


# --- DXA history and the held tier drop ---------------------------------------------------------


@pytest.mark.hazard("HAZ-27")
def test_a_better_dxa_keeps_the_high_tier_and_cancels_nothing_until_a_clinician_confirms_on_the_worklist(
    client, clinician, coordinator, high_by_bone
):
    procedure, patient = high_by_bone, high_by_bone.patient
    open_before = open_intensified(procedure)

    update_patient(patient=patient, bmd_lowest_t_score=Decimal("-2.4"), dxa_date=days_ago(1))

    assert current_tier(procedure) == "high"
    assert cancelled(procedure) == 0
    assert open_intensified(procedure) == open_before and len(open_before) > 20
    review = TierDropReview.objects.get(procedure=procedure)
    assert (review.state, review.tier_from, review.tier_to) == ("open", "high", "elevated")
    assert any("RISK-FX-VERY-LOW-BONE" in change and "no longer applies" in change for change in review.changes)
    assert "fracture points 4 → 2" in review.changes
    # Both scans are kept; the record shows the most recent one.
    history = list(DxaResult.objects.filter(patient=patient).values_list("measured_on", "lowest_t_score"))
    assert history == [(days_ago(1), Decimal("-2.4")), (days_ago(800), Decimal("-3.6"))]

    # Only a clinician confirms: a coordinator of the clinic is refused and nothing changes.
    client.force_login(coordinator)
    refused = client.post(reverse("admin:worklist-act", args=["tier_drop", review.pk, "confirm"]))
    assert refused.status_code == 403
    review.refresh_from_db()
    assert review.state == "open" and current_tier(procedure) == "high"

    client.force_login(clinician)
    page = client.get(reverse("admin:index")).content.decode()
    assert f'id="tier_drop-{review.pk}"' in page and "High → Elevated" in page
    response = client.post(reverse("admin:worklist-act", args=["tier_drop", review.pk, "confirm"]))

    assert response.status_code == 302
    review.refresh_from_db()
    assert (review.state, review.decided_by) == ("confirmed", clinician)
    assert current_tier(procedure) == "elevated"
    intensified = Checkpoint.objects.filter(procedure=procedure, code="INT-HIGH-PRO")
    assert intensified.filter(state=CheckpointState.CANCELLED).exists()
    assert not intensified.filter(state=CheckpointState.SCHEDULED).exists()


@pytest.mark.hazard("HAZ-27")
def test_a_late_older_dxa_is_kept_as_history_and_changes_neither_the_record_nor_the_tier(high_by_bone):
    patient = high_by_bone.patient

    update_patient(patient=patient, bmd_lowest_t_score=Decimal("-1.0"), dxa_date=days_ago(1500))

    patient.refresh_from_db()
    assert (patient.bmd_lowest_t_score, patient.dxa_date) == (Decimal("-3.6"), days_ago(800))
    assert DxaResult.objects.filter(patient=patient).count() == 2
    assert current_tier(high_by_bone) == "high" and not TierDropReview.objects.exists()


@pytest.mark.hazard("HAZ-27")
def test_a_raise_applies_at_once_and_withdraws_a_pending_drop(high_by_bone):
    procedure, patient = high_by_bone, high_by_bone.patient
    update_patient(patient=patient, bmd_lowest_t_score=Decimal("-2.4"), dxa_date=days_ago(2))
    review = TierDropReview.objects.get()

    update_patient(patient=patient, bmd_lowest_t_score=Decimal("-3.9"), dxa_date=days_ago(1))

    review.refresh_from_db()
    assert review.state == "withdrawn" and current_tier(procedure) == "high"
    assert assessment(procedure).fracture_points == 4


def _admin_dxa(client, clinician, procedure, score, on):
    from tests.patients.test_admin import change_form

    patient = procedure.patient
    client.force_login(clinician)
    data = change_form(
        patient,
        bmd_lowest_t_score=str(score),
        dxa_date=on.isoformat(),
        **{"procedures-TOTAL_FORMS": "1", "procedures-INITIAL_FORMS": "1", "procedures-0-id": procedure.pk},
    )
    response = client.post(reverse("admin:patients_patient_change", args=[patient.pk]), data)
    assert response.status_code == 302, response.context and response.context["errors"]


def _rest_dxa(client, clinician, procedure, score, on):
    api = bearer_client(token=make_api_token(clinics=[procedure.patient.clinic]))
    body = {"bmd_lowest_t_score": str(score), "dxa_date": on.isoformat()}
    response = api.patch(f"/api/v1/patients/{procedure.patient_id}/", body, format="json")
    assert response.status_code == 200, response.content


def _checkpoint_dxa(client, clinician, procedure, score, on):
    cp06 = Checkpoint.objects.get(procedure=procedure, code="CP-06")
    complete_checkpoint(checkpoint=cp06, by=clinician, dxa_t_score=score, dxa_date=on)


def _fhir_dxa(client, clinician, procedure, score, on):
    api = bearer_client(token=make_api_token(clinics=[procedure.patient.clinic]))
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "38267-1"}]},
        "subject": {"reference": f"Patient/{procedure.patient_id}"},
        "effectiveDateTime": on.isoformat(),
        "valueQuantity": {"value": float(score), "system": "http://unitsofmeasure.org", "code": "{T-score}"},
    }
    response = api.post("/fhir/Observation", data=json.dumps(body), content_type="application/fhir+json")
    assert response.status_code == 201, response.content


@pytest.mark.hazard("HAZ-27")
@pytest.mark.parametrize("path", [_admin_dxa, _rest_dxa, _checkpoint_dxa, _fhir_dxa], ids=lambda f: f.__name__)
def test_a_better_dxa_by_every_path_is_kept_as_history_and_only_opens_a_clinician_task(
    client, clinician, high_by_bone, path
):
    path(client, clinician, high_by_bone, Decimal("-2.4"), days_ago(1))

    scores = set(DxaResult.objects.filter(patient=high_by_bone.patient).values_list("lowest_t_score", flat=True))
    assert scores == {Decimal("-3.6"), Decimal("-2.4")}
    assert Patient.objects.get(pk=high_by_bone.patient_id).bmd_lowest_t_score == Decimal("-2.4")
    assert current_tier(high_by_bone) == "high"
    assert TierDropReview.objects.get(procedure=high_by_bone).tier_to == "elevated"
    assert not Checkpoint.objects.filter(
        procedure=high_by_bone, code__startswith="INT-HIGH", state="cancelled"
    ).exists()


@pytest.mark.hazard("HAZ-27")
def test_a_worse_dxa_over_fhir_with_no_dxa_checkpoint_open_raises_the_tier_at_once(
    clinician, make_patient, make_procedure
):
    """A scan done outside every DXA window (CP-06 already completed, no repeat scan planned) completes
    nothing, but is a tier input all the same: kept, and a raise applies at once."""
    patient = make_patient(
        birth_date=birth_date_for_age(82), bmd_lowest_t_score=Decimal("-2.4"), dxa_date=days_ago(800)
    )
    procedure = make_procedure(patient=patient, performed_on=days_ago(5), fracture_diagnosed_on=days_ago(10))
    _checkpoint_dxa(None, clinician, procedure, Decimal("-2.4"), days_ago(3))
    assert current_tier(procedure) == "elevated"
    assert not Checkpoint.objects.open().filter(procedure=procedure, code__in=["CP-06", "CP-13"]).exists()

    _fhir_dxa(None, clinician, procedure, Decimal("-3.6"), days_ago(1))

    assert current_tier(procedure) == "high"
    assert Patient.objects.get(pk=patient.pk).bmd_lowest_t_score == Decimal("-3.6")
    assert DxaResult.objects.filter(patient=patient, measured_on=days_ago(1), lowest_t_score=Decimal("-3.6")).exists()
    assert open_intensified(procedure), "the HIGH tier's intensified follow-up is planned at once"


@pytest.mark.hazard("HAZ-27", "HAZ-31")
def test_an_import_starts_the_dxa_history_and_takes_hu_at_an_untreated_level(clinic):
    from patients.importing import import_rows
    from tests.patients.test_import import recent_procedure_rows

    [row] = recent_procedure_rows(days_ago=3)
    row |= {"bmd_lowest_t_score": "-2.9", "dxa_date": days_ago(30).isoformat(), "ct_hu": "60", "ct_hu_level": "L1"}

    result = import_rows(clinic=clinic, rows=[row | {"level": "T9"}], dry_run=False)

    assert result.errors == []
    patient = Patient.objects.get(mrn=row["mrn"])
    assert list(patient.dxa_results.values_list("lowest_t_score", "measured_on")) == [(Decimal("-2.9"), days_ago(30))]
    procedure = patient.procedures.get()
    assert (procedure.ct_hu, procedure.ct_hu_level) == (60, "L1")
    assert "RISK-FX-VERY-LOW-BONE" in {factor["id"] for factor in assessment(procedure).factors}


# --- HU at any level ------------------------------------------------------------------------------


@pytest.mark.hazard("HAZ-31")
def test_hu_measured_at_an_untreated_level_scores_over_rest(make_patient):
    patient = make_patient()
    api = bearer_client(token=make_api_token(clinics=[patient.clinic]))
    body = {
        "patient": patient.pk,
        "kind": "kyphoplasty",
        "performed_on": days_ago(1).isoformat(),
        "fracture_diagnosed_on": days_ago(5).isoformat(),
        "levels": [{"level": "T8"}],
        "ct_hu": 60,
        "ct_hu_level": "L1",
        "ct_hu_scanner": "Scanner A",
    }

    response = api.post("/api/v1/procedures/", body, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()["ct_hu"], response.json()["ct_hu_level"]) == (60, "L1")
    procedure = patient.procedures.get()
    factors = {factor["id"] for factor in assessment(procedure).factors}
    assert {"RISK-FX-LOW-BONE", "RISK-FX-VERY-LOW-BONE"} <= factors
    assert "lowest_hu" not in assessment(procedure).missing


@pytest.mark.hazard("HAZ-31")
def test_hu_without_its_level_is_refused_with_the_field_named(make_patient):
    patient = make_patient()
    api = bearer_client(token=make_api_token(clinics=[patient.clinic]))
    body = {"patient": patient.pk, "kind": "kyphoplasty", "performed_on": days_ago(1).isoformat()}
    body |= {"levels": [{"level": "T8"}], "ct_hu": 60}

    response = api.post("/api/v1/procedures/", body, format="json")

    assert response.status_code == 400 and "ct_hu_level" in response.json()
    assert not patient.procedures.exists()


@pytest.mark.hazard("HAZ-31")
def test_hu_at_an_untreated_level_is_taken_in_the_admin(client, coordinator, make_patient):
    patient = make_patient()
    client.force_login(coordinator)
    data = {
        "patient": patient.pk,
        "kind": "kyphoplasty",
        "performed_on": days_ago(1).isoformat(),
        "fracture_diagnosed_on": days_ago(3).isoformat(),
        "ct_hu": "90",
        "ct_hu_level": "L1",
        "brace_type": "",
        "notes": "",
        "levels-TOTAL_FORMS": "1",
        "levels-INITIAL_FORMS": "0",
        "levels-0-level": "T7",
        "risk_assessments-TOTAL_FORMS": "0",
        "risk_assessments-INITIAL_FORMS": "0",
        "checkpoints-TOTAL_FORMS": "0",
        "checkpoints-INITIAL_FORMS": "0",
    }

    response = client.post(reverse("admin:patients_procedure_add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    procedure = patient.procedures.get()
    assert (procedure.ct_hu, procedure.ct_hu_level) == (90, "L1")
    assert "RISK-FX-LOW-BONE" in {factor["id"] for factor in assessment(procedure).factors}


# --- Medication -----------------------------------------------------------------------------------


@pytest.mark.hazard("HAZ-30")
def test_on_medication_without_a_start_date_is_not_recorded_rather_than_no_medication(make_patient, make_procedure):
    patient = make_patient(on_osteoporosis_med=True, osteoporosis_drug="alendronic acid")
    procedure = make_procedure(patient=patient, performed_on=days_ago(120), fracture_diagnosed_on=days_ago(125))

    current = assessment(procedure)

    assert "RISK-FX-NO-MEDICATION" not in {factor["id"] for factor in current.factors}
    assert "no_medication_by_week_16" in current.missing  # an incomplete risk profile: the start date is asked for


@pytest.mark.hazard("HAZ-29")
def test_the_week_16_sweep_scores_sydney_and_honolulu_patients_on_their_own_local_date(make_patient, make_procedure):
    fracture = date(2026, 1, 10)  # F+112 = 2026-05-02
    with time_machine.travel(datetime(2026, 1, 14, 12, 0, tzinfo=UTC), tick=False):
        sydney, honolulu = (
            make_procedure(
                patient=make_patient(time_zone=zone, on_osteoporosis_med=False),
                performed_on=fracture + timedelta(days=3),
                fracture_diagnosed_on=fracture,
            )
            for zone in ("Australia/Sydney", "Pacific/Honolulu")
        )
    no_medication = "RISK-FX-NO-MEDICATION"

    def scored(procedure):
        return no_medication in {factor["id"] for factor in assessment(procedure).factors}

    # 2026-05-02 12:00 UTC: Sydney 22:00 on F+112 (still "by week 16"), Honolulu 02:00 on F+112.
    with time_machine.travel(datetime(2026, 5, 2, 12, 0, tzinfo=UTC), tick=False):
        assert sweep_medication_deadlines(now=timezone.now()) == 0
    # 14:30 UTC: Sydney 00:30 on F+113 (deadline over, east of UTC); Honolulu 04:30 on F+112.
    with time_machine.travel(datetime(2026, 5, 2, 14, 30, tzinfo=UTC), tick=False):
        assert sweep_medication_deadlines(now=timezone.now()) == 1
        assert sweep_medication_deadlines(now=timezone.now()) == 0  # idempotent
    assert scored(sydney) and not scored(honolulu)
    # 2026-05-03 10:30 UTC: Honolulu 00:30 on F+113.
    with time_machine.travel(datetime(2026, 5, 3, 10, 30, tzinfo=UTC), tick=False):
        assert sweep_medication_deadlines(now=timezone.now()) == 1
        assert sweep_medication_deadlines(now=timezone.now()) == 0
    assert scored(honolulu)
    assert cancelled(sydney) == 0


# --- Day-14 pain for the cleft rule -----------------------------------------------------------------


@pytest.fixture
def cleft(make_procedure):
    procedure = make_procedure(
        performed_on=days_ago(14),
        fracture_diagnosed_on=days_ago(20),
        levels=[{"level": "T8", "intravertebral_cleft": True}],
    )
    assert current_tier(procedure) == "elevated"  # cleft: 1 pain point
    return procedure


def _report_by(source):
    def send(procedure, pain):
        submit_report(procedure=procedure, source=source, pain_now=pain)

    send.__name__ = source
    return send


def _rest_report(procedure, pain):
    api = bearer_client(token=make_api_token(clinics=[procedure.patient.clinic]))
    response = api.post("/api/v1/symptom-reports/", {"patient": procedure.patient_id, "pain_now": pain}, format="json")
    assert response.status_code == 201, response.content


def _fhir_report(procedure, pain):
    api = bearer_client(token=make_api_token(clinics=[procedure.patient.clinic]))
    body = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://kyphofollow.invalid/fhir/Questionnaire/kyphofollow-checkin",
        "status": "completed",
        "subject": {"reference": f"Patient/{procedure.patient_id}"},
        "authored": timezone.now().isoformat(),
        "item": [{"linkId": "pain_now", "answer": [{"valueInteger": pain}]}],
    }
    response = api.post("/fhir/QuestionnaireResponse", data=json.dumps(body), content_type="application/fhir+json")
    assert response.status_code == 201, response.content


@pytest.mark.hazard("HAZ-28")
@pytest.mark.parametrize(
    "send", [_report_by("form"), _report_by("phone"), _rest_report, _fhir_report], ids=lambda f: f.__name__
)
def test_day_14_pain_from_any_path_feeds_the_cleft_rule_and_raises_the_tier_at_once(cleft, send):
    send(cleft, 5)

    assert current_tier(cleft) == "high"
    assert "cleft with pain 5/10 at day 14" in assessment(cleft).reasons
    assert PainReading.objects.filter(procedure=cleft, day=14, pain=5).exists()
    assert Checkpoint.objects.filter(procedure=cleft, code="INT-HIGH-IMAGING").exists()


@pytest.mark.hazard("HAZ-28")
def test_mild_pain_at_day_14_leaves_the_cleft_patient_elevated(cleft):
    submit_report(procedure=cleft, source="phone", pain_now=3)

    assert current_tier(cleft) == "elevated"
