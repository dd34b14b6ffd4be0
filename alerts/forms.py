"""The symptom check-in form (spec §4). One form serves the patient's link and the coordinator's
phone entry; both hand their answers to `alerts.reports.submit_report`."""

from django import forms
from django.utils.translation import gettext_lazy as _

from patients.forms import ServiceActionForm
from patients.models import Procedure

from . import checkins, escalation, outbox, reviews
from .models import PainkillerUse
from .rules import Rules

PAIN_CHOICES = [(value, str(value)) for value in range(11)]
YES_NO = [("yes", _("Yes")), ("no", _("No"))]
YES_NO_NA = [("yes", _("Yes")), ("no", _("No")), ("na", _("Does not apply to me"))]


def _yes_no(label, choices=YES_NO, required=True):
    return forms.ChoiceField(label=label, choices=choices, widget=forms.RadioSelect, required=required)


def _as_bool(value):
    return {"yes": True, "no": False}.get(value)


class CheckInForm(forms.Form):
    pain_now = forms.TypedChoiceField(
        label=_("How bad is your back pain right now? (0 = no pain, 10 = worst pain imaginable)"),
        choices=PAIN_CHOICES,
        coerce=int,
        widget=forms.RadioSelect,
    )
    pain_average_24h = forms.TypedChoiceField(
        label=_("On average, how bad was your back pain over the last 24 hours?"),
        choices=PAIN_CHOICES,
        coerce=int,
        widget=forms.RadioSelect,
    )
    painkillers = forms.ChoiceField(
        label=_("Which painkillers are you taking?"), choices=PainkillerUse.choices, widget=forms.RadioSelect
    )
    fell_since_last = _yes_no(_("Have you fallen since you last answered these questions?"))
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

    def __init__(self, *args, rules: Rules, **kwargs):
        super().__init__(*args, **kwargs)
        self.rules = rules
        for flag in rules.red_flags:
            self.fields[flag.id] = _yes_no(flag.question)
        for opinion in rules.second_opinion:
            choices = [("yes", _("Yes")), ("no", _("No")), ("unsure", _("Not sure"))]
            self.fields[opinion.id] = _yes_no(opinion.question, choices)

    @property
    def red_flag_fields(self):
        return [self[flag.id] for flag in self.rules.red_flags]

    @property
    def other_fields(self):
        named = {flag.id for flag in self.rules.red_flags}
        return [field for field in self if field.name not in named]

    def report_arguments(self) -> dict:
        """The answers as `submit_report` takes them."""
        data = self.cleaned_data
        return {
            "pain_now": data["pain_now"],
            "pain_average_24h": data["pain_average_24h"],
            "red_flags": [flag.id for flag in self.rules.red_flags if data.get(flag.id) == "yes"],
            "second_opinion": {so.id: data[so.id] for so in self.rules.second_opinion if data.get(so.id)},
            "painkillers": data["painkillers"],
            "fell_since_last": _as_bool(data["fell_since_last"]),
            "missed_medication_doses": _as_bool(data["missed_medication_doses"]),
            "medication_side_effects": _as_bool(data["medication_side_effects"]),
            "wearing_brace": _as_bool(data["wearing_brace"]),
            "doing_physio": _as_bool(data["doing_physio"]),
            "other_symptoms": data["other_symptoms"],
        }


class PhoneReportForm(CheckInForm):
    """The same questions, entered by a coordinator from a phone call."""

    procedure = forms.ModelChoiceField(queryset=Procedure.objects.none(), label=_("Procedure"))
    reported_at = forms.DateTimeField(
        label=_("When the patient answered"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, *args, procedures, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["procedure"].queryset = procedures
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
    service = escalation.resolve_alert
    target = "alert"

    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="What was done")


class CompleteReviewForm(ServiceActionForm):
    service = reviews.complete_review_task
    target = "task"

    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="Review outcome")


class LogCallForm(ServiceActionForm):
    service = checkins.log_checkin_call
    target = "checkin"

    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="What was discussed")


class RetryDeliveryForm(ServiceActionForm):
    service = outbox.retry_delivery
    target = "delivery"


class DismissDeliveryForm(ServiceActionForm):
    service = outbox.dismiss_delivery
    target = "delivery"

    note = forms.CharField(max_length=300, label="How it was dealt with")
