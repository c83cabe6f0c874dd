"""The HNSW graph built with ef_construction=128 (it was 64).

Measured at a million vectors (bench/README.md, "Scale"): recall@10 at ef_search 100 went from
0.855 to 0.989 on the hard, isotropic data, at the same index size and query time; the build takes
1.5x as long. The index is rebuilt here, for the storage the column really has (vector or
halfvec, whatever VECTOR_STORAGE says now), with HNSW_BUILD_MEMORY and HNSW_BUILD_WORKERS: on a
large collection this migration takes minutes (a million rows: about 8 on 2 cores).
"""

from django.conf import settings
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
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
                [Image._meta.db_table],
            )
            storage = cursor.fetchone()[0].split("(")[0]
        memory = str(settings.HNSW_BUILD_MEMORY).replace("'", "")
        schema_editor.execute(f"SET LOCAL maintenance_work_mem = '{memory}'")
        schema_editor.execute(f"SET LOCAL max_parallel_maintenance_workers = {int(settings.HNSW_BUILD_WORKERS)}")
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(INDEX)}")
        schema_editor.execute(hnsw_index(ef_construction).for_storage(storage).create_sql(Image, schema_editor))

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
