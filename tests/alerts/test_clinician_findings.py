"""Review items no patient answer scores (spec §1): SO-3 and the revision considerations, entered by
staff, each opening its review with its rule; and the patient's own words, which always reach the
routine review list."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from alerts.models import ReviewTask
from alerts.reports import add_answers, submit_report
from alerts.reviews import complete_review_task, record_clinician_finding
from alerts.rules import get_rules
from patients.protocol import get_protocol
from tests.builders import form_answers, make_staff

RULES = get_rules("2026.1")
REVISIONS = ("REV-UNSTABLE", "REV-INCOMPLETE-CEMENT", "REV-OTHER-LEVEL")


def open_codes(patient) -> list[str]:
    return sorted(ReviewTask.objects.filter(patient=patient, state="open").values_list("code", flat=True))


def test_so3_and_every_revision_consideration_are_protocol_data_with_a_source():
    items = {item.id: item for item in RULES.clinician_findings}

    assert set(items) == {"SO-3", *REVISIONS, "REV-BONE-HEALTH"}
    assert all(item.source and item.tier == "routine" for item in items.values())
    assert all(items[code].opens == ("REV-BONE-HEALTH",) for code in REVISIONS)
    assert items["SO-3"].opens == ()
    assert "clinician_findings" in get_protocol("2026.1").raw


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-22")
@pytest.mark.parametrize("code", REVISIONS)
def test_a_revision_consideration_opens_its_review_and_the_bone_health_reassessment_before_it(
    code, make_patient, clinician
):
    patient = make_patient()

    tasks = record_clinician_finding(patient=patient, code=code, by=clinician, note="CT on 3 March")

    assert [task.code for task in tasks] == [code, "REV-BONE-HEALTH"]
    assert open_codes(patient) == sorted([code, "REV-BONE-HEALTH"])
    revision, bone = tasks
    assert (revision.entered_by, revision.detail, revision.source) == (clinician, "CT on 3 March", "S1")
    assert code in bone.detail and bone.entered_by == clinician


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-22")
def test_two_revision_considerations_share_one_open_bone_health_reassessment(make_patient, clinician):
    patient = make_patient()

    record_clinician_finding(patient=patient, code="REV-UNSTABLE", by=clinician)
    record_clinician_finding(patient=patient, code="REV-OTHER-LEVEL", by=clinician)

    assert open_codes(patient) == ["REV-BONE-HEALTH", "REV-OTHER-LEVEL", "REV-UNSTABLE"]
    [bone] = ReviewTask.objects.filter(patient=patient, code="REV-BONE-HEALTH")
    assert "REV-UNSTABLE" in bone.detail and "REV-OTHER-LEVEL" in bone.detail


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-22")
def test_so3_imaging_unclear_opens_one_routine_review(make_patient, clinician):
    patient = make_patient()

    [task] = record_clinician_finding(patient=patient, code="SO-3", by=clinician, note="MRI and CT disagree")

    assert (task.code, task.tier, task.state) == ("SO-3", "routine", "open")


@pytest.mark.django_db
def test_an_unknown_clinician_finding_is_refused_naming_the_known_ones(make_patient, clinician):
    patient = make_patient()

    with pytest.raises(ValidationError) as excinfo:
        record_clinician_finding(patient=patient, code="REV-GUESS", by=clinician)

    assert "SO-3" in str(excinfo.value.message_dict["code"])
    assert not ReviewTask.objects.filter(patient=patient).exists()


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-22")
def test_staff_enter_a_finding_in_the_admin_only_for_patients_of_their_clinics(
    client, make_patient, clinician, other_clinic
):
    own = make_patient()
    foreign = make_patient(clinic=other_clinic)
    client.force_login(clinician)
    url = "/admin/alerts/reviewtask/record/"

    page = client.get(url).content.decode()
    refused = client.post(url, {"patient": foreign.pk, "code": "SO-3", "note": "x"})
    accepted = client.post(url, {"patient": own.pk, "code": "REV-INCOMPLETE-CEMENT", "note": "coverage 60%"})

    assert f'value="{own.pk}"' in page and f'value="{foreign.pk}"' not in page
    assert refused.status_code == 200 and not ReviewTask.objects.filter(patient=foreign).exists()
    assert accepted.status_code == 302
    assert open_codes(own) == ["REV-BONE-HEALTH", "REV-INCOMPLETE-CEMENT"]


@pytest.mark.django_db
def test_an_auditor_cannot_enter_a_finding(client, clinic):
    auditor = make_staff(username="auditor", clinic=clinic, role="auditor")
    client.force_login(auditor)

    assert client.get("/admin/alerts/reviewtask/record/").status_code == 403


# --- Free text ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-35")
def test_words_alone_on_the_form_reach_the_review_list_with_the_words(client, invite, coordinator):
    invitation = invite()
    words = "Some soreness where the needle went in, getting better"
    assert client.get(invitation.path).status_code == 302

    client.post("/checkin/", {"other_symptoms": words})

    [task] = ReviewTask.objects.filter(patient=invitation.checkin.patient)
    assert (task.code, task.tier, task.state, task.detail) == ("FREE_TEXT", "routine", "open", words)
    client.force_login(coordinator)
    worklist = client.get("/admin/").content.decode()
    assert "FREE_TEXT" in worklist and "getting better" in worklist


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-35")
def test_words_on_a_full_check_in_open_a_review_even_with_nothing_else_to_report(client, invite):
    invitation = invite()
    assert client.get(invitation.path).status_code == 302

    client.post("/checkin/", form_answers(other_symptoms="Stiff near the cemented level"))

    task = ReviewTask.objects.get(patient=invitation.checkin.patient, code="FREE_TEXT")
    assert task.detail == "Stiff near the cemented level"


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-35")
def test_words_from_a_second_report_are_added_to_the_open_review_never_dropped(clock, make_procedure):
    procedure = make_procedure(performed_on=date(2026, 3, 1), fracture_diagnosed_on=date(2026, 2, 20))

    submit_report(procedure=procedure, source="phone", other_symptoms="Tingling in my left foot")
    submit_report(procedure=procedure, source="api", other_symptoms="Still tingling, now both feet")

    [task] = ReviewTask.objects.filter(patient=procedure.patient, code="FREE_TEXT")
    assert "left foot" in task.detail and "both feet" in task.detail


@pytest.mark.django_db
@pytest.mark.hazard("HAZ-35")
def test_words_added_in_the_optional_second_step_open_the_review(clock, make_procedure, clinician):
    procedure = make_procedure(performed_on=date(2026, 3, 1), fracture_diagnosed_on=date(2026, 2, 20))
    report = submit_report(procedure=procedure, source="form", red_flags=["RF-06"], unanswered=["pain_now"])
    assert not ReviewTask.objects.filter(patient=procedure.patient, code="FREE_TEXT").exists()

    add_answers(report=report, other_symptoms="Pain now goes down my right leg")

    task = ReviewTask.objects.get(patient=procedure.patient, code="FREE_TEXT")
    assert task.detail == "Pain now goes down my right leg"
    complete_review_task(task=task, by=clinician, note="Called; RF-06 alert already open")
    task.refresh_from_db()
    assert task.state == "done"


@pytest.mark.django_db
def test_a_report_without_words_opens_no_free_text_review(clock, make_procedure):
    procedure = make_procedure(performed_on=date(2026, 3, 1), fracture_diagnosed_on=date(2026, 2, 20))

    submit_report(procedure=procedure, source="api", pain_now=2, other_symptoms="   ")

    assert not ReviewTask.objects.filter(patient=procedure.patient).exists()
