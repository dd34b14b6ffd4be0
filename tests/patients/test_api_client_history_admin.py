"""API-client history in the admin: every scope change, clinic change and revocation is readable by
whoever manages (or audits) every clinic of the client, by nobody else, and changeable by no one."""

import pytest
from django.test import Client
from django.urls import reverse

from patients.models import ApiClient, ClinicMembership, StaffRole
from tests import builders

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:patients_historicalapiclient_changelist"


def browser_of(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def clients(clinic, other_clinic):
    a, _ = builders.create_api_client(name="EHR A", clinics=[clinic], scopes=["read", "write"])
    b, _ = builders.create_api_client(name="EHR B", clinics=[other_clinic], scopes=["read"])
    both, _ = builders.create_api_client(name="EHR A+B", clinics=[clinic, other_clinic], scopes=["read"])
    return {"a": a, "b": b, "both": both}


def listed(browser) -> set[int]:
    response = browser.get(reverse(CHANGELIST))
    assert response.status_code == 200
    return {record.id for record in response.context["cl"].result_list}


def test_a_clinic_admin_reads_the_scope_change_and_revocation_of_their_own_client_only(clinic, other_clinic, clients):
    admin_a = builders.make_staff(username="a_admin", clinic=clinic, role=StaffRole.CLINIC_ADMIN)
    browser = browser_of(admin_a)
    mine = clients["a"]
    change = reverse("admin:patients_apiclient_change", args=[mine.pk])
    assert browser.post(change, {"name": mine.name, "clinics": [clinic.pk], "scopes": '["read"]'}).status_code == 302
    browser.post(reverse("admin:patients_apiclient_changelist"), {"action": "revoke", "_selected_action": [mine.pk]})

    assert listed(browser) == {mine.pk}, "not B's client, nor the client shared with B"
    page = browser.get(reverse(CHANGELIST)).content.decode()
    assert "revoked" in page
    records = list(ApiClient.history.filter(id=mine.pk).order_by("history_date"))
    assert [r.scopes for r in records] == [["read", "write"], ["read"], ["read"]] and records[-1].revoked_at
    for record in ApiClient.history.filter(id=clients["b"].pk):
        url = reverse("admin:patients_historicalapiclient_change", args=[record.pk])
        assert browser.get(url).status_code in {302, 403, 404}


def test_history_records_cannot_be_added_changed_or_deleted_by_anyone(admin_user, clients):
    browser = browser_of(admin_user)
    record = ApiClient.history.filter(id=clients["a"].pk).first()
    url = reverse("admin:patients_historicalapiclient_change", args=[record.pk])

    page = browser.get(url)
    browser.post(url, {"name": "rewritten", "scopes": "[]"})
    deleted = browser.post(reverse("admin:patients_historicalapiclient_delete", args=[record.pk]), {"post": "yes"})

    assert page.status_code == 200 and not page.context["has_change_permission"]
    record.refresh_from_db()
    assert record.name == "EHR A" and deleted.status_code == 403
    assert browser.get(reverse("admin:patients_historicalapiclient_add")).status_code == 403


def test_an_auditor_of_b_reads_bs_client_history_and_a_coordinator_reads_none(clinic, other_clinic, clients):
    auditor = builders.make_staff(username="b_audit", clinic=other_clinic, role=StaffRole.AUDITOR)
    coordinator = builders.make_staff(username="a_coord", clinic=clinic, role=StaffRole.COORDINATOR)
    ClinicMembership.objects.create(user=coordinator, clinic=other_clinic, role=StaffRole.COORDINATOR)

    assert listed(browser_of(auditor)) == {clients["b"].pk}
    assert browser_of(coordinator).get(reverse(CHANGELIST)).status_code == 403
