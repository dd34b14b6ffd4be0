"""The symptom check-in form (spec §4). One form serves the patient's link and the coordinator's
phone entry; both hand their answers to `alerts.reports.submit_report`."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from patients.forms import ServiceActionForm
from patients.models import CallOutcome, Procedure

from . import checkins, escalation, outbox, reports, reviews
from .models import PainkillerUse, ResolutionReason
from .painkillers import validate_painkillers
from .rules import Rules

PAIN_CHOICES = [(value, str(value)) for value in range(11)]
YES_NO = [("yes", _("Yes")), ("no", _("No"))]
YES_NO_NA = [("yes", _("Yes")), ("no", _("No")), ("na", _("Does not apply to me"))]
# The form asks about falls once, in RF-10 (red flags first); `fell_since_last` stays a field of a report
# from the API, FHIR or an import, where a "yes" counts as RF-10 too.
BOOLEAN_QUESTIONS = (
    "missed_medication_doses",
    "medication_side_effects",
    "wearing_brace",
    "doing_physio",
)


def _yes_no(label, choices=YES_NO):
    return forms.ChoiceField(label=label, choices=choices, widget=forms.RadioSelect, required=False)


def _pain(label):
    return forms.TypedChoiceField(
        label=label, choices=PAIN_CHOICES, coerce=int, empty_value=None, widget=forms.RadioSelect, required=False
    )


def _as_bool(value):
    return {"yes": True, "no": False}.get(value)


class CheckInForm(forms.Form):
    """Capture first (spec §1 capture rules): the red-flag questions come first and no question is
    required. Whatever is answered is saved and evaluated at once; `unanswered()` lists the rest,
    which the patient may add afterwards (`only=` builds the form of just those questions)."""

    pain_now = _pain(_("How bad is your back pain right now? (0 = no pain, 10 = worst pain imaginable)"))
    pain_average_24h = _pain(_("On average, how bad was your back pain over the last 24 hours?"))
    painkillers = forms.MultipleChoiceField(
        label=_("Which painkillers are you taking? Choose all that apply."),
        choices=PainkillerUse.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    missed_medication_doses = _yes_no(_("Have you missed doses of your bone-strengthening medicine?"), YES_NO_NA)
    medication_side_effects = _yes_no(_("Do you have side effects from that medicine?"), YES_NO_NA)
    wearing_brace = _yes_no(_("Are you wearing your back brace as advised?"), YES_NO_NA)
    doing_physio = _yes_no(_("Are you doing your physiotherapy or exercises?"), YES_NO_NA)
    other_symptoms = forms.CharField(
        label=_("Anything else you want your care team to know? (optional)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, rules: Rules, only=None, step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rules = rules
        for flag in rules.red_flags:
            self.fields[flag.id] = _yes_no(flag.question)
        for opinion in rules.second_opinion:
            choices = [("yes", _("Yes")), ("no", _("No")), ("unsure", _("Not sure"))]
            self.fields[opinion.id] = _yes_no(opinion.question, choices)
        self.order_fields([flag.id for flag in rules.red_flags])
        self.partial_step = only is not None
        if only is not None:  # the optional second step: the questions left blank, and the free text
            for name in [name for name in self.fields if name not in {*only, "other_symptoms"}]:
                del self.fields[name]
        self.step = step
        if step is not None:  # one short page of the patient's form
            kept = set(self.steps(rules)[step - 1][1])
            for name in [name for name in self.fields if name not in kept]:
                del self.fields[name]

    @staticmethod
    def steps(rules: Rules) -> list[tuple[str, list[str]]]:
        """The patient's pages, in order, each (heading, questions): red flags first, then pain,
        medicines, and last the second-opinion questions and the free text."""
        return [
            (_("New or changed symptoms"), [flag.id for flag in rules.red_flags]),
            (_("Pain"), ["pain_now", "pain_average_24h", "painkillers"]),
            (_("Medicines, brace and exercise"), list(BOOLEAN_QUESTIONS)),
            (_("How you feel about your care"), [so.id for so in rules.second_opinion] + ["other_symptoms"]),
        ]

    def clean_painkillers(self):
        values = self.cleaned_data.get("painkillers") or []
        try:
            validate_painkillers(values)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc
        return values

    @property
    def red_flag_fields(self):
        return [self[flag.id] for flag in self.rules.red_flags if flag.id in self.fields]

    @property
    def other_fields(self):
        named = {flag.id for flag in self.rules.red_flags}
        return [field for field in self if field.name not in named]

    def questions(self) -> list[str]:
        """Every question of this form (the free-text box is not one)."""
        return [name for name in self.fields if name not in ("other_symptoms", "procedure", "reported_at")]

    def unanswered(self) -> list[str]:
        return [name for name in self.questions() if self.cleaned_data.get(name) in (None, "", [])]

    def clean(self):
        data = super().clean()
        if not self.partial_step and self.step is None and not self.errors:
            answered = set(self.questions()) - set(self.unanswered())
            if not answered and not (data.get("other_symptoms") or "").strip():
                raise forms.ValidationError(_("Please answer at least one question."))
        return data

    def report_arguments(self) -> dict:
        """The answers as `submit_report` takes them; `unanswered` lists the questions left blank."""
        data = self.cleaned_data
        flags = [flag for flag in self.rules.red_flags if flag.id in self.fields]
        arguments = {
            "red_flags": [flag.id for flag in flags if data.get(flag.id) == "yes"],
            "second_opinion": {so.id: data[so.id] for so in self.rules.second_opinion if data.get(so.id)},
            "unanswered": self.unanswered(),
        }
        for name in ("pain_now", "pain_average_24h", "painkillers", "other_symptoms"):
            if name in self.fields:
                arguments[name] = data.get(name) if data.get(name) is not None else None
        for name in BOOLEAN_QUESTIONS:
            if name in self.fields:
                arguments[name] = _as_bool(data.get(name))
        if "painkillers" in arguments:
            arguments["painkillers"] = arguments["painkillers"] or []
        if "other_symptoms" in arguments:
            arguments["other_symptoms"] = arguments["other_symptoms"] or ""
        return arguments

    def kept_despite_errors(self) -> dict | None:
        """A red flag is never refused for another answer's sake (HAZ-41): for a form whose only errors
        are on other questions and that has a red flag answered yes, `report_arguments` without the
        unreadable answers (left blank) and a note naming them; None otherwise (the form's errors stand)."""
        flags = {flag.id for flag in self.rules.red_flags}
        droppable = (set(self.questions()) - flags) | {"other_symptoms"}
        if not self.errors or not set(self.errors) <= droppable:
            return None
        if not any(self.cleaned_data.get(flag) == "yes" for flag in flags):
            return None
        return {**self.report_arguments(), "notes": reports.dropped_notes(sorted(self.errors))}

    def added_answers(self) -> dict:
        """The answers of the optional second step, as `add_answers` takes them."""
        arguments = self.report_arguments()
        arguments.pop("unanswered")
        arguments["answered_red_flags"] = [f.id for f in self.rules.red_flags if self.cleaned_data.get(f.id)]
        return arguments


def _procedure_label(procedure) -> str:
    """Who, then which procedure: for staff picking a patient (the MRN and birth date tell namesakes apart)."""
    patient = procedure.patient
    return (
        f"{patient.family_name}, {patient.given_name} · MRN {patient.mrn} · born {patient.birth_date:%d %b %Y}"
        f" — {procedure.get_kind_display()} on {procedure.performed_on:%d %b %Y}"
    )


class PhoneReportForm(CheckInForm):
    """The same questions, entered by a coordinator from a phone call."""

    procedure = forms.ModelChoiceField(queryset=Procedure.objects.none(), label=_("Procedure"))
    reported_at = forms.DateTimeField(
        label=_("When the patient answered"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, *args, procedures, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["procedure"].queryset = procedures
        self.fields["procedure"].label = _("Patient and procedure")
        self.fields["procedure"].label_from_instance = _procedure_label
        self.order_fields(["procedure", "reported_at"])


# --- Staff actions (admin change pages and the worklist), each calling one service -------------


class AcknowledgeAlertForm(ServiceActionForm):
    service = escalation.acknowledge_alert
    target = "alert"
    via = "admin"

    note = forms.CharField(required=False, max_length=300, widget=forms.Textarea(attrs={"rows": 2}))

    def save(self) -> bool:
        self.cleaned_data["via"] = self.via
        return super().save()


class ResolveAlertForm(ServiceActionForm):
    """Asked twice (HAZ-47): the admin shows a confirmation page with the alert, its red flags and the
    patient before it saves; `confirmed` is the hidden answer of that page."""

    service = escalation.resolve_alert
    target = "alert"

    reason = forms.ChoiceField(choices=[("", "---------"), *ResolutionReason.choices], label="Why it is resolved")
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="What was done")
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def save(self) -> bool:
        self.cleaned_data.pop("confirmed", None)
        return super().save()


class ReopenAlertForm(ServiceActionForm):
    service = escalation.reopen_alert
    target = "alert"

    reason = forms.CharField(max_length=300, widget=forms.Textarea(attrs={"rows": 2}), label="Why it is reopened")


class CompleteReviewForm(ServiceActionForm):
    service = reviews.complete_review_task
    target = "task"

    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="Review outcome")


class ClinicianFindingForm(forms.Form):
    """SO-3 or a revision consideration, entered by a clinician for one patient (spec §1)."""

    patient = forms.ModelChoiceField(queryset=None)
    code = forms.ChoiceField(label="Finding")
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="What the clinician saw")

    def __init__(self, *args, patients, rules: Rules, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["patient"].queryset = patients
        self.fields["code"].choices = [
            (item.id, f"{item.id}: {item.label} ({item.source})") for item in rules.clinician_findings
        ]


class LogCallForm(ServiceActionForm):
    service = checkins.log_checkin_call
    target = "checkin"

    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="What was discussed")


class CallOutcomeForm(ServiceActionForm):
    """One call to a patient for every check-in of theirs that needs one (one worklist row)."""

    service = checkins.log_call_outcome
    target = "patient"

    outcome = forms.ChoiceField(label="How the call went", choices=CallOutcome.choices, widget=forms.RadioSelect)
    note = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), label="What was discussed"
    )
    retry_at = forms.DateTimeField(
        required=False,
        label="Try again at",
        help_text="Needed when the call did not reach the patient; in the clinic's time.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


class RetryDeliveryForm(ServiceActionForm):
    service = outbox.retry_delivery
    target = "delivery"


class DismissDeliveryForm(ServiceActionForm):
    service = outbox.dismiss_delivery
    target = "delivery"

    note = forms.CharField(max_length=300, label="How it was dealt with")
