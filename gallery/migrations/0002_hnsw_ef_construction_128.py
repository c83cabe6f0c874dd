"""The HNSW graph built with ef_construction=128 (it was 64).

A denser graph finds the true neighbours far more often at the same index size and query time, for
a longer build (bench/README.md, "Scale"). The index is rebuilt here for the vector type the column
really has (vector or halfvec, whatever VECTOR_STORAGE says now), with HNSW_BUILD_MEMORY and
HNSW_BUILD_WORKERS: on a large collection this migration takes minutes (bench/README.md).
"""

from django.db import migrations

import gallery.fields

INDEX = "gallery_image_embedding_hnsw"


def hnsw_index(ef_construction):
    return gallery.fields.EmbeddingHnswIndex(
        ef_construction=ef_construction,
        fields=["embedding"],
        m=16,
        name=INDEX,
        opclasses=["vector_cosine_ops"],
    )


def rebuild(ef_construction):
    def run(apps, schema_editor):
        Image = apps.get_model("gallery", "Image")
        gallery.fields.rebuild_hnsw_index(schema_editor, Image, hnsw_index(ef_construction))

    return run


class Migration(migrations.Migration):
    dependencies = [("gallery", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(rebuild(128), rebuild(64))],
            state_operations=[
                migrations.RemoveIndex(model_name="image", name=INDEX),
                migrations.AddIndex(model_name="image", index=hnsw_index(128)),
            ],
        )
    ]
