"""The authorisation matrix, adversarial: staff with mixed roles and API clients against every admin
page, action, autocomplete and filter, the worklist, patient page, KPIs, import, acknowledge links and
every REST and FHIR endpoint, all aimed at clinic B. The admin models and URL patterns are enumerated
here, so a new page cannot escape; the table goes to artifacts/access-matrix.md.

Every persona may write in clinic A at most; nobody may write in B. The auditors of B may read B."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from alerts.messages import issue_acknowledge_link
from alerts.models import Alert, AlertState, EscalationPolicy, WebhookEndpoint
from alerts.reports import submit_report
from interop.fhir.base import version_of
from patients import access
from patients.models import (
    ApiClient,
    Checkpoint,
    CheckpointState,
    ClinicMembership,
    FhirResult,
    Patient,
    StaffRole,
    WorkItem,
)
from tests import builders

pytestmark = pytest.mark.django_db
ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "access-matrix.md"
B_MRN, B_NAME = "ZEBB-0001", "Zebedee"
DENIED = {302, 400, 403, 404, 405}
# Every FHIR instance route (read, and vread at `_history/<vid>`) by URL name, with the row of clinic B
# it is probed with; its search route is the same name + "-type". Named here one by one, so a new FHIR
# route that is not added here (and probed cross-clinic) fails the matrix.
FHIR_ROWS = {
    "fhir-patient": "patient",
    "fhir-procedure": "procedure",
    "fhir-task": "checkpoint",
    "fhir-flag": "alert",
    "fhir-questionnaireresponse": "report",
    "fhir-observation": "observation",
    "fhir-medicationstatement": "medicationstatement",
    "fhir-medicationrequest": "medicationrequest",
}
# URL names of pages with no clinic data (sign-in, the schema, health, the patient's own check-in pages).
NO_CLINIC_DATA = {
    "admin:login", "admin:logout", "admin:password_change", "admin:password_change_done", "admin:jsi18n",
    "admin:otp-setup", "admin:otp-enrol", "admin:view_on_site", "admin:app_list", "admin:tables", "admin:autocomplete",
    "api-schema", "api-docs", "api-redoc", "health", "checkin-start", "checkin-form", "checkin-done", "checkin-more",
    "api-root", "fhir-metadata", "fhir-root", "fhir-unknown", "fhir-questionnaire", "fhir-questionnaire-type",
    "patients-import-template", "landing",
}  # fmt: skip


def staff(username: str, roles: dict, **extra):
    user = get_user_model().objects.create_user(
        username=username, password=builders.STAFF_PASSWORD, email=f"{username}@staff.invalid", is_staff=True, **extra
    )
    for clinic, role in roles.items():
        ClinicMembership.objects.create(user=user, clinic=clinic, role=role)
    builders.sync_staff_groups(user)
    return user


def clinic_world(clinic, *, mrn: str, family_name: str, clinician):
    patient = builders.make_patient(clinic=clinic, number=1, mrn=mrn, family_name=family_name)
    Patient.objects.filter(pk=patient.pk).update(responsible_clinician=clinician)
    procedure = builders.make_procedure(patient=patient, performed_on=timezone.localdate() - timedelta(days=3))
    submit_report(procedure=procedure, source="api", pain_now=6, red_flags=["RF-05"])
    Checkpoint.objects.filter(procedure=procedure).update(state=CheckpointState.DUE)
    EscalationPolicy.objects.create(clinic=clinic, tier="urgent", steps=[{"after_minutes": 0, "notify": "on_call"}])
    WebhookEndpoint.objects.create(clinic=clinic, url=f"https://{clinic.slug}.invalid/hook", secret="whsec_dGVzdA==")
    subject = {"reference": f"Patient/{patient.pk}", "display": family_name}
    drug = {"text": "alendronate"}
    stored = {
        "Observation": {"status": "final", "code": {"text": "DXA"}},
        "MedicationStatement": {"status": "active", "medicationCodeableConcept": drug},
        "MedicationRequest": {"status": "active", "intent": "order", "medicationCodeableConcept": drug},
    }
    results = {
        kind.lower(): FhirResult.objects.create(
            resource_type=kind, patient=patient, code=kind, resource={"resourceType": kind, **body, "subject": subject}
        )
        for kind, body in stored.items()
    }
    alert = Alert.objects.select_related("first_report").get(patient=patient)
    return {
        "patient": patient,
        "procedure": procedure,
        "alert": alert,
        "checkpoint": Checkpoint.objects.filter(procedure=procedure).first(),
        "report": alert.first_report,
    } | results


@pytest.fixture
def world(clinic, other_clinic):
    a_doc = staff("a_doc", {clinic: StaffRole.CLINICIAN})
    b_doc = staff("b_doc", {other_clinic: StaffRole.CLINICIAN})
    a = clinic_world(clinic, mrn="AAAA-0001", family_name="Aardvark", clinician=a_doc)
    b = clinic_world(other_clinic, mrn=B_MRN, family_name=B_NAME, clinician=b_doc)
    client_a, _ = builders.create_api_client(name="EHR A", clinics=[clinic], scopes=["read", "write"])
    client_b, _ = builders.create_api_client(name="EHR B", clinics=[other_clinic], scopes=["read", "write"])
    personas = {
        "coordinator A + auditor B": staff("mix1", {clinic: StaffRole.COORDINATOR, other_clinic: StaffRole.AUDITOR}),
        "clinic admin A + auditor B": staff("mix2", {clinic: StaffRole.CLINIC_ADMIN, other_clinic: StaffRole.AUDITOR}),
        "member of A only": staff("onlya", {clinic: StaffRole.COORDINATOR}),
        "deactivated (admin of A and B)": staff(
            "gone", {clinic: StaffRole.CLINIC_ADMIN, other_clinic: StaffRole.CLINIC_ADMIN}, is_active=False
        ),
    }
    return {"A": a, "B": b, "clinic_b": other_clinic, "b_doc": b_doc, "clients": (client_a, client_b)} | {
        "personas": personas
    }


def reads_b(persona: str) -> bool:
    return "auditor B" in persona


def b_rows(model_admin, world) -> list:
    """Rows of clinic B that `model_admin` lists (found as a superuser would, through its clinic path)."""
    model = model_admin.model
    if model is ApiClient:
        return list(ApiClient.objects.filter(clinics=world["clinic_b"]))
    if model is ApiClient.history.model:
        return list(model.objects.filter(id__in=ApiClient.objects.filter(clinics=world["clinic_b"]).values("pk")))
    path = getattr(model_admin, "clinic_path", None)
    if path is None:
        return []
    lookup = path or "pk"
    return list(model._default_manager.filter(**{lookup: world["clinic_b"].pk})[:3])


def login(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def mutable_field(form):
    for name, field in form.fields.items():
        if field.__class__.__name__ == "CharField" and not getattr(field, "choices", None):
            if name not in ("secret",):
                return name
    return None


def change_post_data(superuser_browser, url: str) -> tuple[dict, str | None]:
    """What the change form would post: its initial values (and its inlines'), with one text field changed."""
    context = superuser_browser.get(url).context
    form = context["adminform"].form
    data = form_values(form)
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
        data[f"{formset.prefix}-TOTAL_FORMS"] = formset.initial_form_count()
        for inline_form in formset.initial_forms:
            data.update(form_values(inline_form))
    changed = mutable_field(form)
    if changed:
        data[changed] = "changed-by-matrix"
    return data, changed


def form_values(form) -> dict:
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            data[form.add_prefix(name)] = [str(item) for item in value]
        elif isinstance(value, bool):
            if value:
                data[form.add_prefix(name)] = "on"
        else:
            formatted = field.widget.format_value(value) if hasattr(field.widget, "format_value") else value
            data[form.add_prefix(name)] = "" if formatted is None else formatted
    return data


def test_every_cross_clinic_write_is_denied_and_no_foreign_row_is_shown(world, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@staff.invalid", "x")
    root_browser = login(root)
    rows, broken, controls = [], [], []

    def cell(page, persona, status, ok):
        rows.append(f"| {page} | {persona} | {status} | {'ok' if ok else 'BROKEN'} |")
        if not ok:
            broken.append((page, persona, status))

    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        targets = b_rows(model_admin, world)
        base = f"admin:{opts.app_label}_{opts.model_name}"
        for persona, user in world["personas"].items():
            browser = login(user)
            response = browser.get(reverse(f"{base}_changelist"))
            shown = set()
            if response.status_code == 200 and "cl" in response.context:
                shown = {obj.pk for obj in response.context["cl"].result_list}
                choices = [str(c) for spec in response.context["cl"].filter_specs for c in _choices(spec)]
                leaked = world["clinic_b"].name in " ".join(choices) and not reads_b(persona)
                cell(f"{base} filters", persona, response.status_code, not leaked)
            foreign = {t.pk for t in targets} & shown
            cell(f"{base} changelist", persona, response.status_code, not foreign or reads_b(persona))
            for target in targets:
                change = reverse(f"{base}_change", args=[target.pk])
                got = browser.get(change)
                ok = got.status_code in DENIED or (
                    reads_b(persona) and not got.context.get("has_change_permission", True)
                )
                cell(f"{base} change GET (B)", persona, got.status_code, ok)
                if model_admin.has_change_permission(_request(root), target):
                    data, changed = change_post_data(root_browser, change)
                    before = model_to_dict(target)
                    posted = browser.post(change, data)
                    target.refresh_from_db()
                    cell(f"{base} change POST (B)", persona, posted.status_code, model_to_dict(target) == before)
                    controls.append((change, data, changed, model, target.pk))
                deleted = browser.post(reverse(f"{base}_delete", args=[target.pk]), {"post": "yes"})
                still = model._default_manager.filter(pk=target.pk).exists()
                cell(f"{base} delete (B)", persona, deleted.status_code, still)
                for action in model_admin.get_actions(_request(root)):
                    before = model_to_dict(target)
                    acted = browser.post(
                        reverse(f"{base}_changelist"),
                        {"action": action, "_selected_action": [target.pk], "post": "yes", "index": 0},
                    )
                    exists = model._default_manager.filter(pk=target.pk).exists()
                    unchanged = exists and model_to_dict(model._default_manager.get(pk=target.pk)) == before
                    cell(f"{base} action {action} (B)", persona, acted.status_code, unchanged)
                for name in getattr(model_admin, "actions_forms", {}):
                    before = model_to_dict(target)
                    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=[target.pk])
                    acted = browser.post(url, {"note": "x", "outcome_notes": "x", "reason": "x"})
                    target.refresh_from_db()
                    cell(f"{base} {name} (B)", persona, acted.status_code, model_to_dict(target) == before)
            added = browser.get(reverse(f"{base}_add"))
            if added.status_code == 200:
                form = added.context["adminform"].form
                ok = _offers_nothing_of_b(form, world)
                cell(f"{base} add form choices", persona, added.status_code, ok)
            else:
                cell(f"{base} add form", persona, added.status_code, True)

    for change, data, changed, model, pk in controls[:: len(world["personas"])]:
        # The control: the very data the personas posted saves when an operator posts it.
        posted = root_browser.post(change, data)
        saved = changed is None or getattr(model._default_manager.get(pk=pk), changed) == "changed-by-matrix"
        cell(f"control: operator posts the same change to {change}", "superuser", posted.status_code, saved)

    _probe_autocomplete(world, cell)
    _probe_staff_pages(world, cell)
    _probe_api(world, cell)
    _probe_urls_are_covered(cell)

    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(
        "# Access matrix: every probe aimed at clinic B\n\nWritten by `tests/test_access_matrix.py`. Personas hold "
        "at most an auditor role in B; API clients: A only, read-only A, revoked, and A+B (which may read B).\n\n"
        "| page, action or endpoint | caller | status | rule |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    assert broken == []


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _choices(spec):
    try:
        return [title for _, title in spec.lookup_choices]
    except (AttributeError, ValueError, TypeError):
        return []


def _offers_nothing_of_b(form, world) -> bool:
    b = world["B"]
    forbidden = {"clinic": world["clinic_b"].pk, "patient": b["patient"].pk, "responsible_clinician": world["b_doc"].pk}
    for name, pk in forbidden.items():
        field = form.fields.get(name)
        if field is not None and hasattr(field, "queryset") and field.queryset.filter(pk=pk).exists():
            return False
    clinics = form.fields.get("clinics")
    return clinics is None or not clinics.queryset.filter(pk=world["clinic_b"].pk).exists()


def _probe_autocomplete(world, cell):
    url = reverse("admin:autocomplete")
    for persona, user in world["personas"].items():
        got = login(user).get(url, {"app_label": "patients", "model_name": "procedure", "field_name": "patient"})
        ids = {row["id"] for row in got.json().get("results", [])} if got.status_code == 200 else set()
        cell("autocomplete procedure.patient", persona, got.status_code, str(world["B"]["patient"].pk) not in ids)


def _probe_staff_pages(world, cell):
    b = world["B"]
    for persona, user in world["personas"].items():
        browser = login(user)
        alert, checkpoint = b["alert"], b["checkpoint"]
        got = browser.post(reverse("admin:worklist-act", args=["alert", alert.pk, "acknowledge"]), {"note": "x"})
        alert.refresh_from_db()
        cell("worklist acknowledge (B)", persona, got.status_code, alert.state == AlertState.OPEN)
        got = browser.post(
            reverse("admin:worklist-act", args=["checkpoint", checkpoint.pk, "complete"]), {"outcome_notes": "x"}
        )
        checkpoint.refresh_from_db()
        cell("worklist complete checkpoint (B)", persona, got.status_code, checkpoint.state == CheckpointState.DUE)
        got = browser.post(reverse("admin:worklist-assign", args=["call", b["patient"].pk]), {"to": world["b_doc"].pk})
        cell(
            "worklist assign (B)", persona, got.status_code, not WorkItem.objects.filter(patient=b["patient"]).exists()
        )
        target = checkpoint.target_date
        got = browser.post(
            reverse("admin:worklist-bulk", args=["checkpoint"]),
            {"selected": [checkpoint.pk], "target_date": "2099-01-01", "reason": "x"},
        )
        checkpoint.refresh_from_db()
        cell("worklist bulk reschedule (B)", persona, got.status_code, checkpoint.target_date == target)
        got = browser.post(
            reverse("admin:worklist-bulk", args=["call"]),
            {"selected": [b["patient"].pk], "outcome": "spoke", "note": "x"},
        )
        cell(
            "worklist bulk call (B)",
            persona,
            got.status_code,
            not WorkItem.objects.filter(patient=b["patient"]).exists(),
        )
        got = browser.get(reverse("admin:index"))
        body = got.content.decode()
        cell("worklist rows", persona, got.status_code, reads_b(persona) or B_MRN not in body)
        got = browser.get(reverse("admin:patient-overview", args=[b["patient"].pk]))
        cell("patient page (B)", persona, got.status_code, reads_b(persona) or got.status_code in DENIED)
        got = browser.get(reverse("kpis"), {"clinic": world["clinic_b"].pk})
        cell("KPIs (B)", persona, got.status_code, reads_b(persona) or got.status_code in DENIED)
        got = browser.get(reverse("patients-import"))
        offered = got.status_code == 200 and got.context["form"].fields["clinic"].queryset.filter(
            pk=world["clinic_b"].pk
        )
        cell("import clinic choices", persona, got.status_code, not offered)
    # Acknowledge links: a clinician of B deactivated, then one removed from B.
    b_doc = world["b_doc"]
    for case in ("deactivated", "removed from clinic"):
        token = issue_acknowledge_link(alert=b["alert"], user_id=b_doc.pk)
        if case == "deactivated":
            get_user_model().objects.filter(pk=b_doc.pk).update(is_active=False)
        else:
            get_user_model().objects.filter(pk=b_doc.pk).update(is_active=True)
            ClinicMembership.objects.filter(user=b_doc).delete()
        got = Client().post(reverse("alert-acknowledge", args=[token]))
        b["alert"].refresh_from_db()
        body = got.content.decode()
        ok = b["alert"].state == AlertState.OPEN and got.status_code == 403 and B_MRN not in body
        cell(f"acknowledge link, clinician {case}", "anyone", got.status_code, ok and B_NAME not in body)


def _api_clients(world):
    clinic_a = world["A"]["patient"].clinic
    read_only, _ = builders.create_api_client(name="RO", clinics=[clinic_a], scopes=["read"])
    revoked, revoked_raw = builders.create_api_client(name="Old", clinics=[clinic_a], scopes=["read", "write"])
    ApiClient.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    return {
        "API client A only": builders.make_api_token(clinics=[clinic_a]),
        "API client read-only A": builders.create_api_client(name="RO2", clinics=[clinic_a], scopes=["read"])[1],
        "API client revoked": revoked_raw,
        "API client A+B": builders.make_api_token(clinics=[clinic_a, world["clinic_b"]]),
    }


def _api_urls(world) -> dict[str, str]:
    b = world["B"]
    pk = {
        "patient": b["patient"].pk,
        "procedure": b["procedure"].pk,
        "checkpoint": b["checkpoint"].pk,
        "alert": b["alert"].pk,
        "symptom-report": b["alert"].first_report_id,
    }
    urls = {}
    for kind, key in pk.items():
        urls[f"REST {kind} list"] = reverse(f"{kind}-list") + f"?patient={b['patient'].pk}"
        urls[f"REST {kind} detail (B)"] = reverse(f"{kind}-detail", args=[key])
    urls["REST patient risk (B)"] = reverse("patient-risk", args=[pk["patient"]])
    urls["REST protocol"] = reverse("api-protocol")
    return urls | _fhir_urls(world)


def _fhir_urls(world) -> dict[str, str]:
    """Search, read and vread of every FHIR route in FHIR_ROWS, each aimed at B's row."""
    b = world["B"]
    urls = {}
    for name, key in FHIR_ROWS.items():
        row = b[key]
        by = "_id" if name == "fhir-patient" else "patient"
        urls[f"FHIR {name} search"] = reverse(f"{name}-type") + f"?{by}={b['patient'].pk}"
        urls[f"FHIR {name} read (B)"] = reverse(name, kwargs={"pk": row.pk})
        vid = version_of(row)
        urls[f"FHIR {name} _history/{vid} (B)"] = reverse(name, kwargs={"pk": row.pk, "vid": vid})
    return urls


def _api_read_ok(name: str, caller: str, got) -> bool:
    """A client of A+B reads B (200: the control that each probe URL is real); a revoked one gets 401;
    every other client gets B's rows refused (4xx) or an empty answer, and never B's name or MRN."""
    if caller == "API client revoked":
        return got.status_code == 401
    if caller == "API client A+B":
        return got.status_code == 200
    body = got.content.decode()
    if B_MRN in body or B_NAME in body:
        return False
    if name.endswith("(B)") or got.status_code != 200:
        return got.status_code in DENIED
    # A FHIR search for B's patient finds nothing (a REST list may show A's rows, never B's).
    return not (name.startswith("FHIR") and got.json().get("entry"))


def _probe_api(world, cell):
    b = world["B"]
    writes = {
        "REST acknowledge alert (B)": (reverse("alert-acknowledge", args=[b["alert"].pk]), {"note": "x"}),
        "REST complete checkpoint (B)": (reverse("checkpoint-complete", args=[b["checkpoint"].pk]), {}),
        "REST PATCH patient (B)": (reverse("patient-detail", args=[b["patient"].pk]), {"given_name": "Hacked"}),
    }
    for caller, token in _api_clients(world).items():
        api = builders.bearer_client(token=token)
        may_read_b = caller == "API client A+B"
        for name, url in _api_urls(world).items():
            got = api.get(url)
            cell(name, caller, got.status_code, _api_read_ok(name, caller, got))
        if may_read_b:
            continue
        for name, (url, data) in writes.items():
            send = api.patch if "PATCH" in name else api.post
            got = send(url, data, format="json")
            b["alert"].refresh_from_db()
            b["checkpoint"].refresh_from_db()
            b["patient"].refresh_from_db()
            unchanged = (
                b["alert"].state == AlertState.OPEN
                and b["checkpoint"].state == CheckpointState.DUE
                and b["patient"].given_name != "Hacked"
            )
            cell(name, caller, got.status_code, got.status_code in DENIED | {401} and unchanged)
    # The same writes with a staff session (coordinator A + auditor B): refused as in the admin.
    browser = login(world["personas"]["coordinator A + auditor B"])
    for name, (url, data) in writes.items():
        send = browser.patch if "PATCH" in name else browser.post
        got = send(url, data, content_type="application/json")
        b["patient"].refresh_from_db()
        cell(name, "coordinator A + auditor B (session)", got.status_code, got.status_code in DENIED)


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{entry.namespace}:" if entry.namespace else prefix
            yield from _walk(entry.url_patterns, namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix + entry.name


def _uncovered(names) -> list[str]:
    """The URL names neither probed above (admin model pages by the registry loop, FHIR routes by
    FHIR_ROWS) nor free of clinic data."""
    probed = {"admin:index", "admin:worklist-act", "admin:patient-overview", "kpis", "patients-import"}
    probed |= {"admin:worklist-assign", "admin:worklist-bulk"}
    probed |= {"alert-acknowledge", "api-protocol", "alerts_symptomreport_phone"}
    probed |= set(FHIR_ROWS) | {f"{name}-type" for name in FHIR_ROWS}
    model_pages = ("_changelist", "_add", "_change", "_delete", "_history")
    uncovered = []
    for name in sorted(set(names)):
        registered = any(
            name.startswith(f"admin:{m._meta.app_label}_{m._meta.model_name}") for m in admin.site._registry
        )
        covered = (
            name in probed
            or name in NO_CLINIC_DATA
            or (registered and (name.endswith(model_pages) or "_" in name.removeprefix("admin:")))
            or name.startswith(("patient-", "procedure-", "checkpoint-", "symptom-report-", "alert-"))
        )
        if not covered:
            uncovered.append(name)
    return uncovered


def _probe_urls_are_covered(cell):
    for name in _uncovered(_walk(get_resolver().url_patterns)):
        cell(f"URL {name} not covered by the matrix", "-", "-", False)


def test_a_fhir_route_without_a_cross_clinic_probe_fails_the_matrix():
    """The matrix names each FHIR route; one it does not name (a new resource, a new operation) is
    reported, so it cannot slip past the probes."""
    fhir_routes = [name for name in _walk(get_resolver().url_patterns) if name.startswith("fhir-")]

    assert _uncovered(fhir_routes) == []
    assert set(FHIR_ROWS) | {f"{name}-type" for name in FHIR_ROWS} <= set(fhir_routes), "every probe is routed"
    assert _uncovered([*fhir_routes, "fhir-condition", "fhir-condition-type", "fhir-patient-everything"]) == [
        "fhir-condition",
        "fhir-condition-type",
        "fhir-patient-everything",
    ]


def test_clinic_admin_of_a_cannot_add_clinic_b_to_a_token_and_the_token_still_cannot_read_b(world):
    client_a = world["clients"][0]
    token = builders.make_api_token(clinics=[client_a.clinics.get()])
    mine = ApiClient.objects.order_by("-pk").first()
    browser = login(world["personas"]["clinic admin A + auditor B"])
    url = reverse("admin:patients_apiclient_change", args=[mine.pk])
    got = browser.post(url, {"name": mine.name, "clinics": [c.pk for c in mine.clinics.all()] + [world["clinic_b"].pk]})
    assert set(mine.clinics.values_list("pk", flat=True)) == {client_a.clinics.get().pk}, got.status_code
    read = builders.bearer_client(token=token).get(reverse("patient-detail", args=[world["B"]["patient"].pk]))
    assert read.status_code == 404
    # Nor can it see, change or revoke B's client.
    client_b = world["clients"][1]
    assert browser.get(reverse("admin:patients_apiclient_change", args=[client_b.pk])).status_code in DENIED
    browser.post(
        reverse("admin:patients_apiclient_changelist"), {"action": "revoke", "_selected_action": [client_b.pk]}
    )
    client_b.refresh_from_db()
    assert client_b.revoked_at is None


def test_api_client_scope_changes_and_revocations_are_history_records(world):
    browser = login(world["personas"]["clinic admin A + auditor B"])
    mine = world["clients"][0]
    before = mine.history.count()
    url = reverse("admin:patients_apiclient_change", args=[mine.pk])
    got = browser.post(url, {"name": mine.name, "clinics": [mine.clinics.get().pk], "scopes": '["read"]'})
    assert got.status_code == 302, got.content.decode()[:2000]
    browser.post(reverse("admin:patients_apiclient_changelist"), {"action": "revoke", "_selected_action": [mine.pk]})
    mine.refresh_from_db()
    assert mine.scopes == ["read"] and mine.revoked_at is not None
    records = list(mine.history.order_by("history_date")[before:])
    assert [r.scopes for r in records][0] == ["read"]
    assert records[-1].revoked_at is not None and records[-1].history_change_reason == "revoked"


def test_clinic_admin_of_a_and_auditor_of_b_cannot_make_themselves_clinic_admin_of_b(world):
    user = world["personas"]["clinic admin A + auditor B"]
    clinic_b = world["clinic_b"]
    membership = ClinicMembership.objects.get(user=user, clinic=clinic_b)
    browser = login(user)
    got = browser.post(
        reverse("admin:patients_clinic_change", args=[clinic_b.pk]),
        {
            "name": clinic_b.name, "slug": clinic_b.slug, "time_zone": clinic_b.time_zone, "phone": clinic_b.phone,
            "email": clinic_b.email, "protocol_version": clinic_b.protocol_version,
            "quiet_hours_start": "20:00", "quiet_hours_end": "08:00", "digest_time": "07:30",
            "memberships-TOTAL_FORMS": 1, "memberships-INITIAL_FORMS": 1, "memberships-MIN_NUM_FORMS": 0,
            "memberships-MAX_NUM_FORMS": 1000, "memberships-0-id": membership.pk, "memberships-0-clinic": clinic_b.pk,
            "memberships-0-user": user.pk, "memberships-0-role": StaffRole.CLINIC_ADMIN,
        },
    )  # fmt: skip
    membership.refresh_from_db()
    assert membership.role == StaffRole.AUDITOR, got.status_code
    assert not access.can(user, access.Action.MANAGE_CLINIC, clinic_b.pk)


def test_coordinator_of_a_auditor_of_b_cannot_edit_b_patient_in_the_admin(world):
    patient = world["B"]["patient"]
    browser = login(world["personas"]["coordinator A + auditor B"])
    got = browser.post(
        reverse("admin:patients_patient_change", args=[patient.pk]),
        {"clinic": patient.clinic_id, "mrn": patient.mrn, "given_name": "Hacked", "family_name": B_NAME},
    )
    patient.refresh_from_db()
    assert got.status_code == 403 and patient.given_name != "Hacked"


def test_acknowledge_link_of_an_active_member_still_works(world):
    """The control for the refused links above: the same link, its clinician still a member, acknowledges."""
    b = world["B"]
    token = issue_acknowledge_link(alert=b["alert"], user_id=world["b_doc"].pk)
    assert Client().post(reverse("alert-acknowledge", args=[token])).status_code == 200
    b["alert"].refresh_from_db()
    assert b["alert"].state == AlertState.ACKNOWLEDGED
