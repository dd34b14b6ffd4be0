"""The programme KPI page in the admin, and the same numbers as CSV (`?format=csv`).

Staff see the clinics where `patients.access` lets them view (a superuser sees all); a clinic outside that list cannot
be chosen. The page runs a fixed number of queries: the user's clinics, then the three of
`alerts.kpis.compute`.
"""

import csv
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from patients import access
from patients.models import Clinic

from . import kpis


class KpiFilterForm(forms.Form):
    clinic = forms.TypedChoiceField(coerce=int, required=False)
    start = forms.DateField(required=False, label="Procedures from", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, clinics: list[Clinic], **kwargs):
        super().__init__(*args, **kwargs)
        self.clinics = {clinic.pk: clinic for clinic in clinics}
        self.fields["clinic"].choices = [(clinic.pk, clinic.name) for clinic in clinics]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        data["clinic"] = self.clinics[data["clinic"]] if data.get("clinic") else next(iter(self.clinics.values()))
        default_start, default_end = kpis.default_period(kpis.clinic_today(data["clinic"], timezone.now()))
        data["start"] = data.get("start") or default_start
        data["end"] = data.get("end") or default_end
        if data["start"] > data["end"]:
            raise forms.ValidationError("The period must start on or before its last day.")
        return data


def clinics_for(user) -> list[Clinic]:
    return list(Clinic.objects.filter(id__in=access.clinics_for(user, access.Action.VIEW)).order_by("name", "pk"))


# --- CSV ----------------------------------------------------------------------------------------

CSV_HEADER = [
    "clinic",
    "period_start",
    "period_end",
    "kpi",
    "group",
    "numerator",
    "denominator",
    "percent",
    "in_progress",
    "median_minutes",
    "source",
    "definition",
]


def _cell(value) -> str:
    return "" if value is None else str(value)


def csv_rows(report: kpis.KpiReport) -> list[list[str]]:
    """The page's numbers, one row per KPI and group."""
    head = [report.clinic.slug, report.start.isoformat(), report.end.isoformat()]
    rows = [CSV_HEADER]
    ratios = [
        *report.fls,
        report.medication_reason_not_started,
        report.window_overall,
        *report.window_by_code,
        *report.escalations,
    ]
    for ratio in ratios:
        rows.append(
            head
            + [
                ratio.key,
                ratio.group,
                str(ratio.numerator),
                str(ratio.denominator),
                _cell(ratio.percent),
                _cell(ratio.in_progress),
                "",
                ratio.source,
                ratio.definition,
            ]
        )
    for item in report.ack_times:
        rows.append(
            head
            + [
                "median_time_to_acknowledge",
                item.tier,
                str(item.acknowledged),
                str(item.raised),
                _cell(kpis.percent(item.acknowledged, item.raised)),
                "",
                _cell(item.median_minutes),
                "[DESIGN]",
                report.ack_definition,
            ]
        )
    return rows


def csv_response(report: kpis.KpiReport) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"kpis-{report.clinic.slug}-{report.start:%Y%m%d}-{report.end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    csv.writer(response).writerows(csv_rows(report))
    return response


def render_page(request, form: KpiFilterForm, report: kpis.KpiReport | None = None, status: int = 200):
    context = {**admin.site.each_context(request), "title": "Programme KPIs", "form": form, "report": report}
    if report is not None:
        context["csv_query"] = urlencode(
            {"clinic": report.clinic.pk, "start": report.start, "end": report.end, "format": "csv"}
        )
    return TemplateResponse(request, "admin/kpis/page.html", context, status=status)


def kpi_page(request):
    clinics = clinics_for(request.user)
    if not clinics:
        raise PermissionDenied("You are not a member of any clinic.")
    form = KpiFilterForm(request.GET, clinics=clinics)
    if not form.is_valid():
        return render_page(request, form, status=400)
    report = kpis.compute(
        clinic=form.cleaned_data["clinic"], start=form.cleaned_data["start"], end=form.cleaned_data["end"]
    )
    if request.GET.get("format") == "csv":
        return csv_response(report)
    return render_page(request, form, report)


urlpatterns = [path("", admin.site.admin_view(kpi_page), name="kpis")]
