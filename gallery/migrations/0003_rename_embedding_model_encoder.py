"""The column naming the encoder that made each vector: "model" means Django models in this codebase."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("gallery", "0002_hnsw_ef_construction_128")]

    operations = [
        migrations.RenameField(model_name="image", old_name="embedding_model", new_name="encoder"),
    ]
