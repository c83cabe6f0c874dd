"""Switching encoders without downtime: a second vector column filled beside the first, and the active pair.

Both new columns are added empty (catalog-only on PostgreSQL 11+); the B-tree on encoder_next is
built on a column of empty strings. Nothing is filled until ``manage.py switch_encoder fill``.
"""

import gallery.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0003_rename_embedding_model_encoder"),
    ]

    operations = [
        migrations.AlterField(
            model_name="image",
            name="encoder",
            field=models.CharField(blank=True, db_default="", db_index=True, max_length=255),
        ),
        migrations.CreateModel(
            name="EncoderPairs",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("image_model", models.CharField(max_length=1024)),
                ("text_model", models.CharField(max_length=1024)),
                ("next_image_model", models.CharField(blank=True, max_length=1024)),
                ("next_text_model", models.CharField(blank=True, max_length=1024)),
                ("generation", models.PositiveBigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name_plural": "encoder pairs",
            },
        ),
        migrations.AddField(
            model_name="image",
            name="embedding_next",
            field=gallery.fields.EmbeddingField(blank=True, dimensions=512, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="image",
            name="encoder_next",
            field=models.CharField(blank=True, db_default="", db_index=True, editable=False, max_length=255),
        ),
    ]
