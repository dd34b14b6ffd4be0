"""A staff search by name or MRN never puts the words in a URL: the admin's list search and the
worklist's search box post them, the session keeps them, and the URL carries an opaque key; the list
shows the right rows, and no redirect, link or log line holds the MRN (ASVS 8.3.1)."""

import logging
import re

import pytest
from django.urls import reverse

from patients.models import StaffRole
from tests import builders

pytestmark = pytest.mark.django_db

MRN = "SRCH-4711"
URLS = re.compile(r'(?:href|action|src)="([^"]*)"')


@pytest.fixture
def searched(make_patient, make_procedure):
    """Two patients of the clinic: the one searched for, and one the search must leave out."""
    wanted = make_patient(mrn=MRN, family_name="Searchwell", given_name="Ada")
    make_procedure(patient=wanted)
    make_procedure(patient=make_patient(mrn="OTHER-1", family_name="Elsewhere", given_name="Bo"))
    return wanted


def urls_of(response) -> list[str]:
    return [response.wsgi_request.get_full_path(), *URLS.findall(response.content.decode())]


@pytest.mark.hazard("HAZ-14")
@pytest.mark.parametrize(
    "changelist",
    ["admin:patients_patient_changelist", "admin:patients_procedure_changelist", "admin:alerts_checkin_changelist"],
)
def test_a_search_by_mrn_in_an_admin_list_keeps_the_mrn_out_of_every_url_and_log(
    client, coordinator, searched, changelist, caplog
):
    from alerts.models import CheckIn

    for procedure in searched.procedures.all():
        CheckIn.objects.create(patient=searched, procedure=procedure, reason="CP-03")
    client.force_login(coordinator)
    url = reverse(changelist)
    caplog.set_level(logging.DEBUG)

    posted = client.post(url, {"_search": "1", "q": MRN, "o": "1"})
    assert posted.status_code == 302 and MRN not in posted["Location"]
    assert re.fullmatch(rf"{url}\?(o=1&)?s=[\w-]+(&o=1)?", posted["Location"]), posted["Location"]
    listed = client.get(posted["Location"])
    page = listed.content.decode()

    assert listed.context["cl"].result_count == 1
    assert "Searchwell" in page and "Elsewhere" not in page
    assert f'value="{MRN}"' in page, "the search box shows what was searched for"
    assert '<form id="changelist-search" method="post" role="search">' in page
    assert not [link for link in urls_of(listed) if MRN in link]
    # The way back from a row, sorting and the next page keep the key, not the words.
    assert "_changelist_filters=" in page and "s%3D" in page
    sorted_again = client.get(posted["Location"] + "&o=-1")
    assert sorted_again.context["cl"].result_count == 1
    assert not [record for record in caplog.records if MRN in record.getMessage()]


def test_a_typed_search_in_the_url_is_moved_out_of_it_at_once(client, coordinator, searched):
    client.force_login(coordinator)
    url = reverse("admin:patients_patient_changelist")

    moved = client.get(url, {"q": MRN})

    assert moved.status_code == 302 and MRN not in moved["Location"]
    assert client.get(moved["Location"]).context["cl"].result_count == 1
    cleared = client.post(url, {"_search": "1", "q": ""})
    assert cleared["Location"] == url
    assert client.get(url).context["cl"].result_count == 2


def test_a_search_key_is_only_good_in_the_session_that_made_it(client, coordinator, clinic, searched):
    client.force_login(coordinator)
    url = reverse("admin:patients_patient_changelist")
    location = client.post(url, {"_search": "1", "q": MRN})["Location"]

    other = builders.make_staff(username="second-coordinator", clinic=clinic, role=StaffRole.COORDINATOR)
    client.force_login(other)
    assert client.get(location).context["cl"].result_count == 2, "an unknown key searches for nothing"


def test_the_worklist_search_keeps_the_mrn_out_of_the_url_and_the_log(client, coordinator, searched, caplog):
    client.force_login(coordinator)
    caplog.set_level(logging.DEBUG)
    worklist = reverse("admin:index")

    posted = client.post(worklist, {"q": MRN, "next": worklist})
    shown = client.get(posted["Location"])

    assert MRN not in posted["Location"]
    assert not [link for link in urls_of(shown) if MRN in link]
    assert not [record for record in caplog.records if MRN in record.getMessage()]
