"""Many rows fast, for query-count tests: rows inserted directly, the shape the services would write."""

from datetime import timedelta

from django.utils import timezone

from alerts.models import Alert, SymptomReport
from patients.models import Patient, Procedure


def make_alerts(clinic, count: int) -> None:
    start = Patient.objects.count()
    now = timezone.now()
    patients = Patient.objects.bulk_create(
        Patient(
            clinic=clinic,
            mrn=f"BULK{start + n:06d}",
            given_name="Bulk",
            family_name=f"P{start + n}",
            birth_date=now.date() - timedelta(days=75 * 365),
            time_zone="Europe/London",
        )
        for n in range(count)
    )
    procedures = Procedure.objects.bulk_create(
        Procedure(patient=p, kind="kyphoplasty", performed_on=now.date() - timedelta(days=5), protocol_version="2026.1")
        for p in patients
    )
    reports = SymptomReport.objects.bulk_create(
        SymptomReport(
            patient=p.patient,
            procedure=p,
            source="api",
            day=5,
            pain_now=7,
            red_flags=["RF-01"],
            protocol_version="2026.1",
        )
        for p in procedures
    )
    Alert.objects.bulk_create(
        Alert(
            patient=r.patient,
            procedure=r.procedure,
            clinic=clinic,
            code="RF-01",
            tier="emergency",
            protocol_version="2026.1",
            rule_source="S0",
            action="Assess",
            first_report=r,
            last_report=r,
            first_seen_at=now,
            last_seen_at=now,
            policy=[{"after_minutes": 0, "notify": "coordinators"}],
            policy_started_at=now,
        )
        for r in reports
    )
