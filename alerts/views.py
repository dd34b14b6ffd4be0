"""Patient check-in pages and the clinician's acknowledge link. No page shows a name, MRN or birth
date; tokens in links are exchanged for a session at once and stored only as digests."""

from datetime import datetime, timedelta

from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
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
SESSION_REPORT = "checkin_report"  # the report the form's first answered step saved; later steps add to it
SESSION_ANSWERS = "checkin_answers"  # the answers given on each step, shown again if the patient goes back
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
    """The patient's form, one short page (step) at a time. Capture first: the first step submitted
    with any answer saves the report and acts on it at once; each later step adds its answers to it.
    A POST without a step (the whole form at once, or one confirmed after an expired session) is
    taken whole. Answers for a check-in cancelled since the form was opened are taken as a report
    without a check-in (HAZ-46)."""
    if request.session.get(SESSION_REPORT):
        return _later_step(request)
    checkin = _open_checkins().filter(pk=request.session.get(SESSION_CHECKIN)).first()
    confirm, attach = False, True
    if checkin is None and request.method == "POST":
        resumed = _resumed(request) or _cancelled_in_session(request)
        if resumed is not None and resumed.state == CheckInState.CANCELLED and _taken_without(resumed):
            return _problem(request, "answered", resumed.patient.clinic)  # once only, as for an open check-in
        if resumed is not None and resumed.state == CheckInState.CANCELLED:
            checkin, attach = resumed, False
        elif resumed is not None and resumed.state not in (CheckInState.INVITED, CheckInState.CALL_NEEDED):
            return _problem(request, "answered", resumed.patient.clinic)
        elif resumed is not None:  # the session expired while the page was open: keep the answers
            checkin, confirm = resumed, True
            _start_session(request, checkin)
    if checkin is None:
        return _problem(request, "session", status=403)
    rules = get_rules(checkin.procedure.protocol_version or checkin.patient.clinic.protocol_version)
    if confirm:
        return _confirm_expired(request, checkin, rules)
    step = _step_number(request, rules)
    if step is not None:
        return _first_steps(request, checkin, rules, step, attach=attach)
    form = CheckInForm(request.POST if request.method == "POST" else None, rules=rules)
    if request.method == "POST":
        arguments = form.report_arguments() if form.is_valid() else form.kept_despite_errors()
        if arguments is not None and _save_first(request, checkin, form, arguments, attach=attach):
            return redirect("checkin-done")
    return _render_form(request, form, checkin.patient.clinic, rules, resume=checkin.pk)


def _cancelled_in_session(request) -> CheckIn | None:
    """The session's check-in if it was cancelled while its form was open (HAZ-46)."""
    return (
        CheckIn.objects.select_related("patient__clinic", "procedure")
        .filter(pk=request.session.get(SESSION_CHECKIN), state=CheckInState.CANCELLED)
        .first()
    )


def _taken_without(checkin: CheckIn) -> bool:
    """Whether answers for the cancelled `checkin` were already taken as a report without it."""
    return SymptomReport.objects.filter(notes__contains=[_cancelled_note(checkin)]).exists()


def _cancelled_note(checkin: CheckIn) -> dict:
    return {"code": "checkin_cancelled", "checkin": checkin.pk}


def _confirm_expired(request, checkin, rules):
    """A submit after the session expired (HAZ-04): the red flags answered yes are saved and acted on
    at once, and the patient sees their instruction (HAZ-42) [DESIGN]; every other answer is shown
    again and is taken only when the patient confirms it. With no red flag yes, everything waits."""
    form = CheckInForm(request.POST, rules=rules)
    form.is_valid()
    clinic = checkin.patient.clinic
    answered = [flag.id for flag in rules.red_flags if form.cleaned_data.get(flag.id) in ("yes", "no")]
    flags = [code for code in answered if form.cleaned_data[code] == "yes"]
    if not flags:
        return _render_form(request, form, clinic, rules, confirm=True, resume=checkin.pk)
    unanswered = [name for name in form.questions() if name not in answered]
    if _save_first(request, checkin, form, {"red_flags": flags, "unanswered": unanswered}) is None:
        return _render_form(request, form, clinic, rules, confirm=True, resume=checkin.pk)
    result = request.session[SESSION_RESULT]
    rest = CheckInForm(rules=rules, only=unanswered, initial=_posted(request, unanswered))
    wording = promises_for(clinic, rules, now=timezone.now())
    context = {"form": rest, "clinic": clinic, "wording": wording, "more": True, "confirm": True, "result": result}
    return render(request, "alerts/checkin/form.html", {**context, "action": reverse("checkin-more")})


def _posted(request, names) -> dict:
    """The answers of `names` in the POST, as a form's initial values (a list for a multiple choice)."""
    posted = {name: request.POST.getlist(name) if name == "painkillers" else request.POST.get(name) for name in names}
    posted["other_symptoms"] = request.POST.get("other_symptoms", "")
    return {name: value for name, value in posted.items() if value}


def _step_number(request, rules) -> int | None:
    """The step shown or submitted (1 to the last); None for a POST of the whole form."""
    raw = request.POST.get("step") if request.method == "POST" else request.GET.get("step", "1")
    if raw is None:
        return None
    count = len(CheckInForm.steps(rules))
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= count else 1


def _save_first(request, checkin, form, arguments: dict, *, attach: bool = True) -> SymptomReport | None:
    """Save the report of `arguments` (the answers of `form` so far) for `checkin` (or, `attach` False,
    for its procedure without it: HAZ-46) and act on it; None with the form's errors set if refused."""
    if not attach:
        arguments = {**arguments, "notes": [*arguments.get("notes", ()), _cancelled_note(checkin)]}
    try:
        report = reports.submit_report(
            procedure=checkin.procedure, source="form", checkin=checkin if attach else None, **arguments
        )
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
        return None
    request.session.pop(SESSION_CHECKIN, None)
    request.session[SESSION_RESULT] = _result(report, get_rules(report.protocol_version))
    return report


def _first_steps(request, checkin, rules, step: int, *, attach: bool = True):
    """A step before anything was saved: keep its answers; once any is given, save them all."""
    form = CheckInForm(request.POST or None, rules=rules, step=step, initial=_kept(request))
    if request.method == "POST" and form.is_valid():
        _keep(request, form)
        everything = CheckInForm(_kept_data(request), rules=rules)
        if everything.is_valid():  # something is answered: save it and act on it now
            report = _save_first(request, checkin, everything, everything.report_arguments(), attach=attach)
            if report is not None:
                request.session[SESSION_REPORT] = report.pk
                return _after_step(request, rules, step)
            form.add_error(None, everything.non_field_errors() or everything.errors.as_text())
        elif step == len(CheckInForm.steps(rules)):
            form.add_error(None, everything.non_field_errors())
        else:
            return redirect(f"{reverse('checkin-form')}?step={step + 1}")
    return _render_form(request, form, checkin.patient.clinic, rules, resume=checkin.pk)


def _later_step(request):
    """A step after the report was saved: its answers are added to that report."""
    report = SymptomReport.objects.filter(pk=request.session[SESSION_REPORT]).select_related("patient__clinic").first()
    if report is None:
        return _problem(request, "session", status=403)
    rules = get_rules(report.protocol_version)
    step = _step_number(request, rules) or 1
    form = CheckInForm(request.POST or None, rules=rules, step=step, initial=_kept(request))
    if request.method == "POST" and form.is_valid():
        _keep(request, form)
        try:
            report = reports.add_answers(report=report, **form.added_answers())
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            request.session[SESSION_RESULT] = _result(report, rules)
            return _after_step(request, rules, step)
    return _render_form(request, form, report.patient.clinic, rules)


def _after_step(request, rules, step: int):
    """On to the next step, or to the confirmation page after the last step or at once when the
    answers so far need emergency care."""
    if step < len(CheckInForm.steps(rules)) and request.session[SESSION_RESULT]["tier"] != "emergency":
        return redirect(f"{reverse('checkin-form')}?step={step + 1}")
    for key in (SESSION_REPORT, SESSION_ANSWERS):
        request.session.pop(key, None)
    return redirect("checkin-done")


def _keep(request, form) -> None:
    """The raw answers of `form`'s step, kept in the session so that going back shows them."""
    kept = dict(request.session.get(SESSION_ANSWERS, {}))
    for name in form.fields:
        kept[name] = [value for value in request.POST.getlist(name) if value != ""]
    request.session[SESSION_ANSWERS] = kept


def _kept_data(request) -> MultiValueDict:
    return MultiValueDict(request.session.get(SESSION_ANSWERS, {}))


def _kept(request) -> dict:
    """The kept answers as a form's initial values (a list for a multiple choice)."""
    return {
        name: (values if name == "painkillers" else values[0]) for name, values in _kept_data(request).lists() if values
    }


def _render_form(request, form, clinic, rules, *, confirm=False, resume=None):
    steps = CheckInForm.steps(rules)
    context = {
        "form": form,
        "clinic": clinic,
        "wording": promises_for(clinic, rules, now=timezone.now()),
        "confirm": confirm,
        "resume": signing.dumps(resume, salt=RESUME_SALT) if resume else "",
        "first_red_flag": rules.red_flags[0].id,
        "step": form.step,
        "steps": len(steps),
        "heading": steps[form.step - 1][0] if form.step else "",
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
        "dropped": _dropped(report, rules),
        "reported_at": report.created_at.isoformat(),  # the promise is made for the moment it was sent
    }


def _dropped(report, rules) -> list[dict]:
    """The answers the report could not take (HAZ-41), each with its question and why."""
    fields = CheckInForm(rules=rules).fields
    notes = [note for note in report.notes if note["code"] == "dropped_answer"]
    return [
        {"question": str(fields[note["field"]].label) if note["field"] in fields else note["field"], **note}
        for note in notes
    ]


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
