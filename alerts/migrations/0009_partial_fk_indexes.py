"""Foreign keys most rows leave empty are indexed only where set: bulk writers skip the empty entries."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0008_delivery_patient'),
        ('patients', '0011_partial_fk_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='delivery',
            name='alert',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='alerts.alert'),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='checkin',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='alerts.checkin'),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='endpoint',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='alerts.webhookendpoint'),
        ),
        migrations.AlterField(
            model_name='delivery',
            name='recipient_user',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('checkin__isnull', False)), fields=['checkin'], name='delivery_checkin'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('alert__isnull', False)), fields=['alert'], name='delivery_alert'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('recipient_user__isnull', False)), fields=['recipient_user'], name='delivery_recipient_user'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('endpoint__isnull', False)), fields=['endpoint'], name='delivery_endpoint'),
        ),
    ]
