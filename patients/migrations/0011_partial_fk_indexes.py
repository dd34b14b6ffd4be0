"""Foreign keys most rows leave empty are indexed only where set: bulk writers skip the empty entries."""

import django.db.models.deletion
import patients.audit
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0010_patientux_appointment'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='checkpointevent',
            name='api_client',
            field=models.ForeignKey(blank=True, db_index=False, default=patients.audit.current_client_id, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='patients.apiclient'),
        ),
        migrations.AlterField(
            model_name='checkpointevent',
            name='by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='checkpointevent',
            index=models.Index(condition=models.Q(('by__isnull', False)), fields=['by'], name='checkpoint_event_by'),
        ),
        migrations.AddIndex(
            model_name='checkpointevent',
            index=models.Index(condition=models.Q(('api_client__isnull', False)), fields=['api_client'], name='checkpoint_event_client'),
        ),
    ]
