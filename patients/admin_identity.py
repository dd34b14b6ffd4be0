"""Who a row is about, on every admin list of patient rows: name, MRN, birth date, and the clinic for
staff of more than one clinic. Read with the row (select_related), never one query per row. These
columns are for staff screens only; `__str__` of every model stays free of identifiers because it
ends up in logs and messages."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from . import access


def patient_of(obj, path: str):
    for hop in path.split("__"):
        obj = getattr(obj, hop)
    return obj


class PatientIdentityColumns:
    """A ModelAdmin mixin: the `identity_replaces` entry of `list_display` becomes the identity columns
    of the patient reached by `patient_path`."""

    patient_path = "patient"
    identity_replaces = "patient"

    def get_list_display(self, request):
        identity = ["patient_name", "patient_mrn", "patient_birth_date"]
        if len(access.clinics_for(request.user, access.Action.VIEW)) > 1:
            identity.append("patient_clinic")
        columns = []
        for entry in super().get_list_display(request):
            columns += identity if entry == self.identity_replaces else [entry]
        return columns

    def get_list_select_related(self, request):
        related = super().get_list_select_related(request)
        if related is True:
            return True
        return [*(related or []), f"{self.patient_path}__clinic"]

    @admin.display(description="Patient")
    def patient_name(self, obj):
        patient = patient_of(obj, self.patient_path)
        url = reverse("admin:patient-overview", args=[patient.pk])
        return format_html('<a href="{}">{}</a>', url, patient.display_name)

    @admin.display(description="MRN")
    def patient_mrn(self, obj):
        return patient_of(obj, self.patient_path).mrn

    @admin.display(description="Born")
    def patient_birth_date(self, obj):
        return patient_of(obj, self.patient_path).birth_date

    @admin.display(description="Clinic")
    def patient_clinic(self, obj):
        return patient_of(obj, self.patient_path).clinic
