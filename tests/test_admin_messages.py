"""What staff read after an action in the admin or on the worklist is a sentence for people: a capital
or a number first, a full stop last, and no field names, ids, rule or spec ids, "(s)" plurals or
design markers."""

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from alerts import dashboard
from alerts.admin import raised_sentence
from alerts.models import Alert
from alerts.reports import submit_report
from patients.admin import ServiceActionsAdmin, revoked_sentence
from patients.importing import ImportResult

NOT_FOR_PEOPLE = re.compile(r"_|#\d|\[DESIGN\]|\(s\)|\b(RF|SO|CP|HAZ|INT|PAIN|FREE)[-_][A-Z0-9]|spec §|\bid\b")


def assert_sentence(text: str) -> None:
    assert (text[:1].isupper() or text[:1].isdigit()) and text.endswith("."), text
    assert not NOT_FOR_PEOPLE.search(text), text


def every_done_sentence() -> list[str]:
    """The sentence of every button action on the admin's change pages, every worklist action and every
    bulk action."""
    sentences = [
        done
        for model_admin in admin.site._registry.values()
        if isinstance(model_admin, ServiceActionsAdmin)
        for _form, _title, done in model_admin.actions_forms.values()
    ]
    sentences += [done for _model, _needed, actions in dashboard.ACTIONS.values() for _form, done in actions.values()]
    sentences += [done.format(n=2) for *_rest, pair in dashboard.BULK.values() for done in pair]
    return sentences


def test_every_admin_and_worklist_action_says_what_was_done_in_a_sentence():
    sentences = every_done_sentence()

    assert len(sentences) >= 15
    for sentence in sentences:
        assert_sentence(sentence)


def test_counted_messages_read_as_sentences_for_every_count():
    result = ImportResult()
    result.counts.update({"patients": 1, "procedures": 2, "checkpoints": 9, "needs_review": 1})
    findings = [
        {"code": "RF-02", "kind": "alert", "tier": "urgent"},
        {"code": "FREE_TEXT", "kind": "review", "tier": "routine"},
        {"code": "RF-05", "kind": "alert", "tier": "urgent"},
    ]

    for sentence in (
        *(revoked_sentence(n) for n in (0, 1, 3)),
        f"The file was imported into Northside Spine: {result.summary()}.",
        f"The phone report was saved. {raised_sentence(findings)}",
        f"The phone report was saved. {raised_sentence([])}",
    ):
        assert_sentence(sentence)
    assert raised_sentence(findings) == "It raised 2 urgent alerts and 1 review task."


@pytest.mark.django_db
def test_the_messages_after_real_actions_are_sentences(client, admin_client, coordinator, make_procedure):
    from patients.models import ApiClient

    procedure = make_procedure(performed_on=timezone.localdate() - timedelta(days=3))
    submit_report(procedure=procedure, source="api", pain_now=7, red_flags=["RF-02"])
    alert = Alert.objects.get()
    client.force_login(coordinator)
    acknowledged = client.post(reverse("admin:alerts_alert_acknowledge", args=[alert.pk]), {"note": "Called."})
    ehr = ApiClient.objects.create(name="EHR", scopes=["read"], token_hash="b" * 64, token_prefix="kf_bbbb")
    revoked = admin_client.post(
        reverse("admin:patients_apiclient_changelist"), {"action": "revoke", "_selected_action": [ehr.pk]}
    )

    said = [str(m) for m in get_messages(acknowledged.wsgi_request)] + [
        str(m) for m in get_messages(revoked.wsgi_request)
    ]
    assert said == [
        "The alert was acknowledged.",
        "The token of one API client was revoked; it can no longer call the API.",
    ]
    for sentence in said:
        assert_sentence(sentence)
