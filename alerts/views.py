"""Patient check-in pages and the clinician's acknowledge link. No page shows a name, MRN or birth
date; tokens in links are exchanged for a session at once and stored only as digests."""

from datetime import datetime, timedelta

from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from patients import access
from patients.protocol import get_protocol

from . import escalation, reports
from .forms import CheckInForm
from .models import AcknowledgeLink, AlertState, CheckIn, CheckInLink, CheckInState, SymptomReport, token_digest
from .promises import promises_for
from .rules import get_rules, highest_tier

SESSION_CHECKIN = "checkin_id"
SESSION_RESULT = "checkin_result"
RESUME_MAX_AGE = 7 * 24 * 3600  # an expired session's answers can be confirmed for as long as a link lives [DESIGN]


RESUME_SALT = "kyphofollow.checkin.resume"
CLINIC_COOKIE = "kf_checkin_clinic"  # the clinic's id only, so an expired session's page can give its phone


def _problem(request, problem: str, clinic=None, status: int = 410):
    if clinic is None and problem == "session":
        clinic = _clinic_from_cookie(request)
    return render(request, "alerts/checkin/problem.html", {"problem": problem, "clinic": clinic}, status=status)


def _clinic_from_cookie(request):
    from patients.models import Clinic

    try:
        clinic_id = request.get_signed_cookie(CLINIC_COOKIE, salt=RESUME_SALT)
    except (KeyError, signing.BadSignature):
        return None
    return Clinic.objects.filter(pk=clinic_id).first()


def _open_checkins():
    return CheckIn.objects.select_related("patient__clinic", "procedure").filter(
        state__in=[CheckInState.INVITED, CheckInState.CALL_NEEDED]
    )


def _start_session(request, checkin: CheckIn) -> None:
    request.session.cycle_key()
    request.session[SESSION_CHECKIN] = checkin.pk
    protocol = get_protocol(checkin.procedure.protocol_version or checkin.patient.clinic.protocol_version)
    request.session.set_expiry(int(protocol.link_lifetime("checkin_form").total_seconds()))


@never_cache
@require_http_methods(["GET", "HEAD"])
def checkin_start(request, token: str):
    """Open a session for the link's check-in and show the form at a URL with no token. The link
    changes nothing: it opens the form as often as needed (a mail scanner's prefetch, then the
    patient) until the check-in is answered or the link expires."""
    link = (
        CheckInLink.objects.select_related("checkin__patient__clinic", "checkin__procedure")
        .filter(token_hash=token_digest(token))
        .first()
    )
    if link is None:
        return _problem(request, "unknown", status=404)
    checkin, clinic = link.checkin, link.checkin.patient.clinic
    if checkin.state not in (CheckInState.INVITED, CheckInState.CALL_NEEDED):
        return _problem(request, "answered", clinic)
    if link.expires_at <= timezone.now():
        return _problem(request, "expired", clinic)
    _start_session(request, checkin)
    response = redirect("checkin-form")
    response.set_signed_cookie(
        CLINIC_COOKIE,
        clinic.pk,
        salt=RESUME_SALT,
        max_age=(link.expires_at - timezone.now()).total_seconds(),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
    return response


def _resumed(request) -> CheckIn | None:
    """The check-in named by the form's signed `resume` field, for a POST whose session has expired."""
    try:
        checkin_id = signing.loads(request.POST.get("resume", ""), salt=RESUME_SALT, max_age=RESUME_MAX_AGE)
    except signing.BadSignature:
        return None
    return CheckIn.objects.select_related("patient__clinic", "procedure").filter(pk=checkin_id).first()


@never_cache
@require_http_methods(["GET", "POST"])
def checkin_form(request):
    checkin = _open_checkins().filter(pk=request.session.get(SESSION_CHECKIN)).first()
    confirm = False
    if checkin is None and request.method == "POST":
        resumed = _resumed(request)
        if resumed is not None and resumed.state not in (CheckInState.INVITED, CheckInState.CALL_NEEDED):
            return _problem(request, "answered", resumed.patient.clinic)
        if resumed is not None:  # the session expired while the page was open: keep the answers, ask to confirm
            checkin, confirm = resumed, True
            _start_session(request, checkin)
    if checkin is None:
        return _problem(request, "session", status=403)
    rules = get_rules(checkin.procedure.protocol_version or checkin.patient.clinic.protocol_version)
    form = CheckInForm(request.POST if request.method == "POST" else None, rules=rules)
    if request.method == "POST" and not confirm and form.is_valid():
        try:
            report = reports.submit_report(
                procedure=checkin.procedure, source="form", checkin=checkin, **form.report_arguments()
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            request.session.pop(SESSION_CHECKIN, None)
            request.session[SESSION_RESULT] = _result(report, rules)
            return redirect("checkin-done")
    context = {
        "form": form,
        "clinic": checkin.patient.clinic,
        "wording": promises_for(checkin.patient.clinic, rules, now=timezone.now()),
        "confirm": confirm,
        "resume": signing.dumps(checkin.pk, salt=RESUME_SALT),
        "first_red_flag": rules.red_flags[0].id,
    }
    return render(request, "alerts/checkin/form.html", context, status=400 if form.errors and not confirm else 200)


def _result(report, rules) -> dict:
    """What the confirmation page shows, kept in the session."""
    return {
        "tier": highest_tier_of(report.findings),
        "second_opinion": any(get_protocol(rules.version).shows_second_opinion(f["code"]) for f in report.findings),
        "clinic_id": report.patient.clinic_id,
        "version": rules.version,
        "report_id": report.pk,
        "unanswered": len(report.unanswered),
        "reported_at": report.created_at.isoformat(),  # the promise is made for the moment it was sent
    }


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
    if clinic is None:
        return _problem(request, "session", status=403)
    sent = datetime.fromisoformat(result["reported_at"]) if "reported_at" in result else timezone.now()
    wording = promises_for(clinic, get_rules(result["version"]), now=sent)
    return render(request, "alerts/checkin/done.html", {"result": result, "clinic": clinic, "wording": wording})


@never_cache
@require_http_methods(["GET", "POST"])
def checkin_more(request):
    """The optional second step of a partial check-in: the questions left blank. The answers already
    sent were saved and acted on; these are added to the same report."""
    result = request.session.get(SESSION_RESULT)
    report = SymptomReport.objects.filter(pk=(result or {}).get("report_id")).select_related("patient__clinic").first()
    if report is None:
        return _problem(request, "session", status=403)
    rules = get_rules(report.protocol_version)
    form = CheckInForm(request.POST if request.method == "POST" else None, rules=rules, only=report.unanswered)
    if request.method == "POST" and form.is_valid():
        try:
            report = reports.add_answers(report=report, **form.added_answers())
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            request.session[SESSION_RESULT] = _result(report, rules)
            return redirect("checkin-done")
    wording = promises_for(report.patient.clinic, rules, now=timezone.now())
    context = {"form": form, "clinic": report.patient.clinic, "wording": wording, "more": True}
    return render(request, "alerts/checkin/form.html", context, status=400 if form.errors else 200)


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
