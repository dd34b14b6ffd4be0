"""The registry refuses bad clinical data with an error naming the field, and writes nothing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from patients.models import Patient, Procedure, TreatedLevel
from patients.services import record_procedure

pytestmark = pytest.mark.django_db


def errors_of(excinfo) -> dict:
    return excinfo.value.message_dict


def test_registered_patient_is_stored_with_its_risk_fields(make_patient):
    patient = make_patient(bmd_lowest_t_score=Decimal("-2.7"), bmi=Decimal("21.5"), prior_vertebral_fractures=2)

    stored = Patient.objects.get(pk=patient.pk)
    assert stored.bmd_lowest_t_score == Decimal("-2.7")
    assert stored.prior_vertebral_fractures == 2
    assert str(stored) == f"Patient #{patient.pk}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bmd_lowest_t_score", Decimal("-6.1")),
        ("bmd_lowest_t_score", Decimal("3.1")),
        ("bmi", Decimal("11.9")),
        ("prior_vertebral_fractures", 16),
        ("time_zone", "Mars/Olympus"),
    ],
)
def test_out_of_range_patient_field_is_refused_by_name(make_patient, field, value):
    with pytest.raises(ValidationError) as excinfo:
        make_patient(**{field: value})

    assert field in errors_of(excinfo)
    assert not Patient.objects.exists()


def test_birth_date_outside_the_spec_age_range_is_refused(make_patient):
    too_young = timezone.localdate().replace(year=timezone.localdate().year - 30)

    with pytest.raises(ValidationError) as excinfo:
        make_patient(birth_date=too_young)

    assert "between 40 and 110" in errors_of(excinfo)["birth_date"][0]


def test_duplicate_mrn_in_one_clinic_is_refused_but_allowed_in_another(make_patient, other_clinic):
    make_patient(mrn="A-100")

    with pytest.raises(ValidationError) as excinfo:
        make_patient(mrn="A-100")
    assert "MRN" in str(errors_of(excinfo))
    assert Patient.objects.count() == 1

    make_patient(mrn="A-100", clinic=other_clinic)
    assert Patient.objects.count() == 2


def test_an_mrn_registered_by_a_racing_request_after_the_check_gives_the_same_mrn_error(make_patient, monkeypatch):
    """The racing request committed its row after this one's existence check but before its save."""
    from django.db.models import QuerySet

    make_patient(mrn="A-200")
    real_exists, calls = QuerySet.exists, []

    def exists_before_the_racer_committed(queryset):
        calls.append(queryset.model)
        return False if len(calls) == 1 else real_exists(queryset)

    monkeypatch.setattr(QuerySet, "exists", exists_before_the_racer_committed)
    with pytest.raises(ValidationError) as excinfo:
        make_patient(mrn="A-200")

    assert list(errors_of(excinfo)) == ["mrn"]
    assert Patient.objects.filter(mrn="A-200").count() == 1


def test_procedure_dated_in_the_future_is_refused(make_procedure):
    with pytest.raises(ValidationError) as excinfo:
        make_procedure(performed_on=timezone.localdate() + timedelta(days=1))

    assert "performed_on" in errors_of(excinfo)
    assert not Procedure.objects.exists()


def test_procedure_before_its_fracture_diagnosis_is_refused(make_procedure):
    today = timezone.localdate()
    with pytest.raises(ValidationError) as excinfo:
        make_procedure(performed_on=today - timedelta(days=5), fracture_diagnosed_on=today - timedelta(days=2))

    assert "fracture_diagnosed_on" in errors_of(excinfo)
    assert not Procedure.objects.exists()


@pytest.mark.parametrize(
    ("level", "field"),
    [
        ({"level": "T13"}, "levels[1].level"),
        ({"level": "L6"}, "levels[1].level"),
        ({"level": "L2", "hounsfield_units": 401}, "levels[1].hounsfield_units"),
        ({"level": "L2", "hounsfield_units": -51}, "levels[1].hounsfield_units"),
        ({"level": "L2", "cement_distribution": "scattered"}, "levels[1].cement_distribution"),
        ({"level": "L1"}, "levels[1].level"),
    ],
    ids=["T13", "L6", "hu-high", "hu-low", "bad-distribution", "level-twice"],
)
def test_bad_treated_level_is_named_and_nothing_is_written(make_patient, level, field):
    patient = make_patient()

    with pytest.raises(ValidationError) as excinfo:
        record_procedure(
            patient=patient,
            kind="kyphoplasty",
            performed_on=timezone.localdate(),
            levels=[{"level": "L1", "hounsfield_units": 120}, level],
        )

    assert field in errors_of(excinfo)
    assert not Procedure.objects.exists()
    assert not TreatedLevel.objects.exists()


def test_procedure_without_levels_is_refused(make_patient):
    with pytest.raises(ValidationError) as excinfo:
        record_procedure(patient=make_patient(), kind="vertebroplasty", performed_on=timezone.localdate(), levels=[])

    assert "levels" in errors_of(excinfo)
    assert not Procedure.objects.exists()


def test_leak_site_needs_leakage(make_patient):
    with pytest.raises(ValidationError) as excinfo:
        record_procedure(
            patient=make_patient(),
            kind="kyphoplasty",
            performed_on=timezone.localdate(),
            levels=[{"level": "T12", "cement_leakage": False, "leak_site": "venous"}],
        )

    assert "levels[0].leak_site" in errors_of(excinfo)
