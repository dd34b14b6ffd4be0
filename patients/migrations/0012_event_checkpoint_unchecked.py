"""A checkpoint event is not re-checked against its checkpoint by the database at commit: see the model."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0011_partial_fk_indexes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='checkpointevent',
            name='checkpoint',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='patients.checkpoint'),
        ),
    ]
