"""A coordinator runs the clinic from the worklist: finds a patient by MRN (never putting it in a URL),
gives the work to a colleague, logs a call that did not reach the patient and sees it come back at the
time they chose; enters the answers from a call task without choosing the patient again; and may act
only on the rows of the clinics where their role allows it."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from alerts.models import CheckIn, CheckInState, SymptomReport
from patients.models import CheckpointState, ClinicMembership, StaffRole, WorkItem, WorkKind
from patients.services import sweep_checkpoint_states
from tests import builders
from tests.builders import form_answers

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # 10:00 in London
WORKLIST = reverse("admin:index")


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def overdue(clock, make_patient, make_procedure):
    """Olive Overdue (MRN OV-77): missed checkpoints and two unanswered check-ins needing a call."""
    patient = make_patient(given_name="Olive", family_name="Overdue", mrn="OV-77", phone="+442079460123")
    procedure = make_procedure(
        patient=patient,
        performed_on=NOW.date() - timedelta(days=30),
        fracture_diagnosed_on=NOW.date() - timedelta(days=40),
    )
    sweep_checkpoint_states(now=NOW)
    for reason in ("CP-01", "CP-03"):
        CheckIn.objects.create(patient=patient, procedure=procedure, reason=reason, state=CheckInState.CALL_NEEDED)
    for number in range(2, 6):  # namesakes and neighbours the search must leave out
        make_procedure(patient=make_patient(given_name="Other", family_name=f"Person{number}"))
    return procedure


@pytest.fixture
def colleague(clinic):
    return builders.make_staff(username="cora", clinic=clinic, role=StaffRole.COORDINATOR)


def search(client, words: str):
    response = client.post(WORKLIST, {"q": words, "next": WORKLIST})
    assert response.status_code == 302 and "OV-77" not in response["Location"]
    return client.get(response["Location"])


def call_rows(response) -> list[int]:
    return [patient.pk for patient in response.context["sections"]["calls"]]


@pytest.mark.hazard("HAZ-62")
def test_coordinator_finds_an_overdue_patient_by_mrn_assigns_logs_a_voicemail_and_sees_the_call_come_back(
    client, coordinator, colleague, overdue, clock
):
    patient = overdue.patient
    client.force_login(coordinator)

    found = search(client, "ov-77")

    assert call_rows(found) == [patient.pk]  # one row for the patient's two unanswered check-ins
    assert [p.pk for p in found.context["sections"]["checkpoints"]] == [patient.pk]
    assert all(section.page.paginator.count <= 1 for section in found.context["pages"].values())
    html = found.content.decode()
    assert "Overdue, Olive" in html and "MRN OV-77" in html and 'href="tel:+442079460123"' in html
    assert "Person2" not in html

    assigned = client.post(
        reverse("admin:worklist-assign", args=["call", patient.pk]), {"to": colleague.pk, "next": WORKLIST}
    )
    assert assigned.status_code == 302
    assert WorkItem.objects.get(patient=patient, kind=WorkKind.CALL).assigned_to == colleague

    logged = client.post(
        reverse("admin:worklist-act", args=["call", patient.pk, "log"]),
        {"outcome": "voicemail", "note": "asked her to ring back", "retry_at": "2026-05-04T15:30", "next": WORKLIST},
        follow=True,
    )

    assert "The call was logged." in logged.content.decode()
    assert call_rows(client.get(WORKLIST)) == []  # waiting until the time to try again
    assert call_rows(client.get(WORKLIST, {"waiting": "1"})) == [patient.pk]
    assert CheckIn.objects.filter(patient=patient, state=CheckInState.CALL_NEEDED).count() == 2  # still open
    item = WorkItem.objects.get(patient=patient, kind=WorkKind.CALL)
    assert item.retry_at == datetime(2026, 5, 4, 14, 30, tzinfo=UTC)  # 15:30 in London (summer time)
    assert (item.last_outcome, item.attempts) == ("voicemail", 1)

    clock.move_to(datetime(2026, 5, 4, 14, 29, tzinfo=UTC))
    client.force_login(coordinator)  # staff sessions end after 30 idle minutes
    assert call_rows(client.get(WORKLIST)) == []
    clock.move_to(datetime(2026, 5, 4, 14, 30, tzinfo=UTC))
    back = client.get(WORKLIST)
    assert call_rows(back) == [patient.pk]
    assert "Try again at 4 May 2026, 15:30" in back.content.decode()


def test_speaking_to_the_patient_closes_every_call_task_of_theirs(client, coordinator, overdue):
    client.force_login(coordinator)

    client.post(
        reverse("admin:worklist-act", args=["call", overdue.patient_id, "log"]),
        {"outcome": "spoke", "note": "pain settling, no red flags"},
    )

    assert set(CheckIn.objects.filter(patient=overdue.patient).values_list("state", flat=True)) == {"called"}
    assert call_rows(client.get(WORKLIST)) == []


@pytest.mark.parametrize(
    ("answers", "says"),
    [
        ({"outcome": "no_answer"}, "Give a time in the future to try the call again."),
        ({"outcome": "no_answer", "retry_at": "2026-05-04T09:00"}, "Give a time in the future"),
        ({"outcome": "spoke", "note": " "}, "Say what was discussed."),
        ({"outcome": "shouted"}, "How the call went"),
    ],
)
@pytest.mark.hazard("HAZ-62")
def test_a_call_outcome_without_what_it_needs_is_refused_in_a_sentence_and_changes_nothing(
    client, coordinator, overdue, answers, says
):
    client.force_login(coordinator)

    page = client.post(reverse("admin:worklist-act", args=["call", overdue.patient_id, "log"]), answers, follow=True)

    assert "Nothing was changed. " in page.content.decode() and says in page.content.decode()
    assert not WorkItem.objects.exists()
    assert CheckIn.objects.filter(state=CheckInState.CALL_NEEDED).count() == 2


def test_marking_several_patients_called_at_once(client, coordinator, overdue, make_procedure):
    second = make_procedure(performed_on=overdue.performed_on, fracture_diagnosed_on=overdue.fracture_diagnosed_on)
    CheckIn.objects.create(patient=second.patient, procedure=second, reason="CP-01", state=CheckInState.CALL_NEEDED)
    client.force_login(coordinator)

    page = client.post(
        reverse("admin:worklist-bulk", args=["call"]),
        {"selected": [overdue.patient_id, second.patient_id], "outcome": "spoke", "note": "both fine to continue"},
        follow=True,
    )

    assert "The call was logged for 2 patients." in page.content.decode()
    assert not CheckIn.objects.filter(state=CheckInState.CALL_NEEDED).exists()


def test_bulk_reschedule_moves_the_selected_checkpoints(client, coordinator, overdue):
    missed = list(overdue.checkpoints.filter(state=CheckpointState.MISSED)[:2])
    client.force_login(coordinator)

    client.post(
        reverse("admin:worklist-bulk", args=["checkpoint"]),
        {"selected": [cp.pk for cp in missed], "target_date": "2026-05-11", "reason": "clinic closed last week"},
    )

    assert {str(cp.target_date) for cp in overdue.checkpoints.filter(pk__in=[cp.pk for cp in missed])} == {"2026-05-11"}


@pytest.mark.hazard("HAZ-61")
def test_the_phone_entry_from_a_call_task_arrives_with_the_patient_chosen_and_named(client, coordinator, overdue):
    checkin = CheckIn.objects.filter(patient=overdue.patient).order_by("pk").first()
    client.force_login(coordinator)
    worklist = client.get(WORKLIST).content.decode()
    link = f"{reverse('admin:alerts_symptomreport_phone')}?checkin={checkin.pk}"
    assert f'href="{link}"' in worklist

    offered = client.get(link)

    banner = offered.content.decode()
    assert "This report is for <strong>Overdue, Olive</strong> · MRN OV-77 · born" in banner
    assert list(offered.context["form"].fields["procedure"].queryset) == [overdue]  # only hers
    assert offered.context["form"]["procedure"].value() == overdue.pk
    saved = client.post(
        link, {"checkin": checkin.pk, "procedure": overdue.pk, "reported_at": "2026-05-04T09:45", **form_answers()}
    )

    assert saved.status_code == 302
    report = SymptomReport.objects.get()
    assert (report.patient_id, report.source, report.checkin_id) == (overdue.patient_id, "phone", checkin.pk)
    checkin.refresh_from_db()
    assert checkin.state == CheckInState.ANSWERED


@pytest.mark.hazard("HAZ-61")
def test_the_phone_entry_finds_the_patient_by_mrn_without_it_in_the_url(client, coordinator, overdue):
    client.force_login(coordinator)

    found = client.post(reverse("admin:alerts_symptomreport_phone"), {"find": "1", "find_q": "OV-77"})

    assert found.status_code == 200 and found.context["chosen"] == overdue.patient
    assert "This report is for <strong>Overdue, Olive</strong>" in found.content.decode()


@pytest.fixture
def mixed(other_clinic, overdue, coordinator, make_patient, make_procedure):
    """The coordinator of the first clinic is also an auditor of the other one, which has a call task."""
    ClinicMembership.objects.create(user=coordinator, clinic=other_clinic, role=StaffRole.AUDITOR)
    theirs = make_procedure(patient=make_patient(clinic=other_clinic, mrn="B-1", family_name="Bee"))
    CheckIn.objects.create(patient=theirs.patient, procedure=theirs, reason="CP-01", state=CheckInState.CALL_NEEDED)
    builders.make_staff(username="bea", clinic=other_clinic, role=StaffRole.COORDINATOR)
    return theirs


def test_a_coordinator_who_audits_another_clinic_sees_its_rows_but_cannot_assign_or_act_on_them(
    client, coordinator, mixed
):
    client.force_login(coordinator)
    page = client.get(WORKLIST)
    rows = {patient.pk: patient for patient in page.context["sections"]["calls"]}

    assert rows[mixed.patient_id].can_act is False and rows[mixed.patient_id].assignees == []
    html = page.content.decode()
    assert reverse("admin:worklist-act", args=["call", mixed.patient_id, "log"]) not in html
    assert reverse("admin:worklist-assign", args=["call", mixed.patient_id]) not in html

    bea = ClinicMembership.objects.get(user__username="bea").user
    assign = client.post(reverse("admin:worklist-assign", args=["call", mixed.patient_id]), {"to": bea.pk})
    log = client.post(
        reverse("admin:worklist-act", args=["call", mixed.patient_id, "log"]), {"outcome": "spoke", "note": "x"}
    )
    bulk = client.post(
        reverse("admin:worklist-bulk", args=["call"]), {"selected": [mixed.patient_id], "outcome": "spoke", "note": "x"}
    )

    assert (assign.status_code, log.status_code, bulk.status_code) == (403, 403, 302)
    assert not WorkItem.objects.filter(patient=mixed.patient).exists()
    assert CheckIn.objects.get(patient=mixed.patient).state == CheckInState.CALL_NEEDED


def test_work_is_given_only_to_someone_whose_role_in_the_patients_clinic_allows_it(
    client, coordinator, overdue, other_clinic_coordinator
):
    client.force_login(coordinator)

    page = client.post(
        reverse("admin:worklist-assign", args=["call", overdue.patient_id]),
        {"to": other_clinic_coordinator.pk},
        follow=True,
    )

    assert "This person cannot take this work in the patient&#x27;s clinic." in page.content.decode()
    assert not WorkItem.objects.exists()


def test_filters_and_page_stay_in_the_address_after_an_action(client, coordinator, overdue):
    client.force_login(coordinator)
    here = f"{WORKLIST}?due=missed&calls_sort=-name&checkpoints_page=1"

    response = client.post(
        reverse("admin:worklist-act", args=["call", overdue.patient_id, "log"]),
        {"outcome": "spoke", "note": "fine", "next": here},
    )

    assert response["Location"] == f"{here}#call-{overdue.patient_id}"
    assert client.get(here).context["filters"].due == "missed"
