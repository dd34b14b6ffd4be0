"""Painkillers become a set: each stored single value becomes a list of one (an empty one, none)."""

import django.contrib.postgres.fields
from django.db import migrations, models

import alerts.painkillers

FIELD = django.contrib.postgres.fields.ArrayField(
    base_field=models.CharField(
        choices=[
            ("none", "None"),
            ("non_opioid", "Non-opioid (e.g. paracetamol, ibuprofen)"),
            ("opioid", "Opioid (e.g. codeine, tramadol, morphine)"),
        ],
        max_length=12,
    ),
    blank=True,
    default=list,
    size=None,
    validators=[alerts.painkillers.validate_painkillers],
)

TO_LIST = (
    "ALTER TABLE alerts_symptomreport ALTER COLUMN painkillers TYPE varchar(12)[]"
    " USING CASE WHEN painkillers = '' THEN '{}'::varchar(12)[] ELSE ARRAY[painkillers]::varchar(12)[] END"
)
TO_ONE = (
    "ALTER TABLE alerts_symptomreport ALTER COLUMN painkillers TYPE varchar(12)"
    " USING coalesce(painkillers[1], '')"
)


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0006_promises_review_detail"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(TO_LIST, TO_ONE)],
            state_operations=[migrations.AlterField(model_name="symptomreport", name="painkillers", field=FIELD)],
        ),
    ]
