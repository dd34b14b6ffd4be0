"""Reminders and check-in invitations name their patient (the weekly cap's index); rows already
written get theirs from their checkpoint or check-in."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


BACKFILL = [
    "UPDATE alerts_delivery d SET patient_id = p.patient_id FROM patients_checkpoint c "
    "JOIN patients_procedure p ON p.id = c.procedure_id WHERE d.kind = 'reminder' AND c.id = d.checkpoint_id",
    "UPDATE alerts_delivery d SET patient_id = ci.patient_id FROM alerts_checkin ci "
    "WHERE d.kind = 'checkin' AND ci.id = d.checkin_id",
]


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0007_patientux_painkillers_multi'),
        ('patients', '0010_patientux_appointment'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='delivery',
            name='patient',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, db_index=False, related_name='+', to='patients.patient'),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('patient__isnull', False)), fields=['patient', 'created_at'], name='delivery_patient_week'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['reminder', 'checkin']), _negated=True) | models.Q(('patient__isnull', False)), name='patient_message_names_patient', violation_error_message='A reminder or check-in invitation names its patient.'),
        ),
    ]
