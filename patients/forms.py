"""Staff action forms; each one's `save` calls one service with the object and the acting user."""

from django import forms
from django.core.exceptions import ValidationError

from . import services

DATE_INPUT = forms.DateInput(attrs={"type": "date"})


class ServiceActionForm(forms.Form):
    """Calls `service(<target>=obj, by=user, **cleaned_data)` and turns its ValidationError into form
    errors. `target` names the service's keyword for the object."""

    service = None
    target = "checkpoint"

    def __init__(self, *args, instance, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance, self.user = instance, user

    def save(self) -> bool:
        arguments = {
            name: "" if value is None and isinstance(self.fields[name], forms.CharField) else value
            for name, value in self.cleaned_data.items()
        }
        try:
            type(self).service(**{self.target: self.instance}, by=self.user, **arguments)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return False
        return True


class CompleteCheckpointForm(ServiceActionForm):
    service = services.complete_checkpoint

    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Visit or call notes")
    pain_score = forms.IntegerField(min_value=0, max_value=10, required=False, label="Pain NRS 0–10")
    dxa_t_score = forms.DecimalField(
        min_value=-6, max_value=3, decimal_places=1, required=False, label="DXA lowest T-score"
    )
    dxa_date = forms.DateField(required=False, label="DXA date", widget=DATE_INPUT)
    medication_started = forms.NullBooleanField(required=False, label="Osteoporosis medication started?")
    medication_drug = forms.CharField(required=False, label="Drug")
    medication_started_on = forms.DateField(required=False, label="Medication start date", widget=DATE_INPUT)
    medication_not_started_reason = forms.CharField(required=False, label="Documented reason not started")


class RescheduleCheckpointForm(ServiceActionForm):
    service = services.reschedule_checkpoint

    target_date = forms.DateField(label="New date", widget=DATE_INPUT)
    reason = forms.CharField(max_length=300)


class CancelCheckpointForm(ServiceActionForm):
    service = services.cancel_checkpoint

    reason = forms.CharField(max_length=300)


class ConfirmTierDropForm(ServiceActionForm):
    """A clinician confirms a lower tier held by a re-assessment (spec v0.2 §2)."""

    service = services.confirm_tier_drop
    target = "review"

    def save(self) -> bool:
        if not super().save():
            return False
        self.instance.refresh_from_db()
        if self.instance.state != self.instance.State.CONFIRMED:
            self.add_error(None, "The risk no longer lowers the tier: the task was withdrawn and the tier stays.")
            return False
        return True


class BookAppointmentForm(ServiceActionForm):
    service = services.book_appointment

    appointment_at = forms.DateTimeField(
        label="Appointment date and time", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
