"""Patient check-in pages and the clinician's acknowledge link. No page shows a name, MRN or birth
date; tokens in links are exchanged for a session at once and stored only as digests."""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from patients import access

from . import escalation, reports
from .forms import CheckInForm
from .models import AcknowledgeLink, AlertState, CheckIn, CheckInLink, CheckInState, token_digest
from .rules import get_rules, highest_tier

SESSION_CHECKIN = "checkin_id"
SESSION_RESULT = "checkin_result"
CHECKIN_SESSION_SECONDS = 2 * 3600  # time to fill in the form after opening the link [DESIGN]


def _problem(request, problem: str, clinic=None, status: int = 410):
    return render(request, "alerts/checkin/problem.html", {"problem": problem, "clinic": clinic}, status=status)


@never_cache
def checkin_start(request, token: str):
    """Exchange a check-in link for a session (once), then show the form at a URL with no token."""
    link = CheckInLink.objects.select_related("checkin__patient__clinic").filter(token_hash=token_digest(token)).first()
    if link is None:
        return _problem(request, "unknown", status=404)
    checkin, clinic = link.checkin, link.checkin.patient.clinic
    if checkin.state not in (CheckInState.INVITED, CheckInState.CALL_NEEDED):
        return _problem(request, "answered", clinic)
    now = timezone.now()
    if link.expires_at <= now:
        return _problem(request, "expired", clinic)
    if not CheckInLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=now):
        return _problem(request, "used", clinic)
    request.session.cycle_key()
    request.session[SESSION_CHECKIN] = checkin.pk
    request.session.set_expiry(CHECKIN_SESSION_SECONDS)
    return redirect("checkin-form")


@never_cache
@require_http_methods(["GET", "POST"])
def checkin_form(request):
    checkin = (
        CheckIn.objects.select_related("patient__clinic", "procedure")
        .filter(pk=request.session.get(SESSION_CHECKIN), state__in=[CheckInState.INVITED, CheckInState.CALL_NEEDED])
        .first()
    )
    if checkin is None:
        return _problem(request, "session", status=403)
    rules = get_rules(checkin.procedure.protocol_version or checkin.patient.clinic.protocol_version)
    form = CheckInForm(request.POST or None, rules=rules)
    if request.method == "POST" and form.is_valid():
        try:
            report = reports.submit_report(
                procedure=checkin.procedure, source="form", checkin=checkin, **form.report_arguments()
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            request.session.pop(SESSION_CHECKIN, None)
            request.session[SESSION_RESULT] = {
                "tier": highest_tier_of(report.findings),
                "second_opinion": any(
                    f["code"].startswith("SO-") or f["code"] == "PAIN_NOT_IMPROVING" for f in report.findings
                ),
                "clinic_id": checkin.patient.clinic_id,
                "version": rules.version,
            }
            return redirect("checkin-done")
    return render(
        request,
        "alerts/checkin/form.html",
        {"form": form, "clinic": checkin.patient.clinic, "wording": rules.wording},
        status=400 if form.errors else 200,
    )


def highest_tier_of(findings: list[dict]) -> str | None:
    from .rules import Finding

    return highest_tier([Finding(**finding) for finding in findings])


@never_cache
def checkin_done(request):
    result = request.session.get(SESSION_RESULT)
    if result is None:
        return _problem(request, "session", status=403)
    from patients.models import Clinic

    clinic = Clinic.objects.filter(pk=result["clinic_id"]).first()
    rules = get_rules(result["version"])
    return render(request, "alerts/checkin/done.html", {"result": result, "clinic": clinic, "wording": rules.wording})


@never_cache
@require_http_methods(["GET", "POST"])
def alert_acknowledge(request, token: str):
    """GET shows the alert and one button; POST acknowledges. A GET never changes anything, so mail
    scanners that open links cannot acknowledge an alert. The link acts as its clinician, who must,
    at the moment of use, be active and allowed to act on alerts in the alert's clinic."""
    link = (
        AcknowledgeLink.objects.select_related("alert__clinic", "user").filter(token_hash=token_digest(token)).first()
    )
    if link is None:
        return render(request, "alerts/ack.html", {"problem": "unknown"}, status=404)
    alert = link.alert
    if not access.can(link.user, access.Action.ACT_ON_ALERTS, alert.clinic_id):
        # Deactivated, or no longer allowed to act on this clinic's alerts: the link is dead.
        return render(request, "alerts/ack.html", {"problem": "not_allowed"}, status=403)
    if link.used_at or alert.state != AlertState.OPEN:
        return render(request, "alerts/ack.html", {"problem": "done", "alert": alert}, status=410)
    if link.expires_at <= timezone.now():
        return render(request, "alerts/ack.html", {"problem": "expired", "alert": alert}, status=410)
    if request.method == "POST":
        try:
            with transaction.atomic():
                if not AcknowledgeLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=timezone.now()):
                    raise ValidationError("link already used")
                alert = escalation.acknowledge_alert(
                    alert=alert, by=link.user, via="e-mail link", note=request.POST.get("note", "")[:300]
                )
        except PermissionDenied:
            return render(request, "alerts/ack.html", {"problem": "not_allowed"}, status=403)
        except ValidationError:
            return render(request, "alerts/ack.html", {"problem": "done", "alert": alert}, status=410)
        return render(request, "alerts/ack.html", {"acknowledged": True, "alert": alert})
    return render(
        request,
        "alerts/ack.html",
        {
            "alert": alert,
            "expires_in": link.expires_at - timezone.now() if link.expires_at > timezone.now() else timedelta(0),
        },
    )
