"""Show or convert how the embeddings are stored: float32 `vector` or float16 `halfvec`.

halfvec halves the table and the HNSW index (bench/README.md has the figures). Converting keeps
every vector: the column is cast in place and the index rebuilt, in one transaction, so a failed
conversion leaves the table as it was. Set VECTOR_STORAGE to the same value afterwards.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from gallery.fields import STORAGES, vector_storage
from gallery.models import Image


def column_storage() -> str:
    """The type the embedding column has in the database now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = 'embedding'",
            [Image._meta.db_table],
        )
        (column_type,) = cursor.fetchone()
    return column_type.split("(")[0]


class Command(BaseCommand):
    help = "Show the embedding storage (vector or halfvec), or convert the table to KIND keeping its data."

    def add_arguments(self, parser):
        parser.add_argument("kind", nargs="?", choices=sorted(STORAGES), help="Convert to this storage.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; change nothing.")

    def handle(self, *args, kind, dry_run, **options):
        current = column_storage()
        table, field = Image._meta.db_table, Image._meta.get_field("embedding")
        if kind is None:
            self.stdout.write(
                f"{table}.embedding is {current}({field.dimensions}); VECTOR_STORAGE={settings.VECTOR_STORAGE}"
            )
            return
        if kind == current:
            self.stdout.write(f"{table}.embedding is already {kind}; nothing to do.")
        elif dry_run:
            self.stdout.write(f"Would convert {table}.embedding from {current} to {kind} and rebuild its HNSW index.")
            return
        else:
            self._convert(kind, table, field.dimensions)
            self.stdout.write(self.style.SUCCESS(f"Converted {table}.embedding from {current} to {kind}."))
        if kind != settings.VECTOR_STORAGE:
            self.stdout.write(self.style.WARNING(f"Now set VECTOR_STORAGE={kind} (it is {settings.VECTOR_STORAGE})."))

    def _convert(self, kind: str, table: str, dimensions: int) -> None:
        (index,) = [i for i in Image._meta.indexes if i.name == "gallery_image_embedding_hnsw"]
        quote = connection.ops.quote_name
        try:
            with transaction.atomic(), connection.schema_editor(atomic=False) as editor:
                editor.execute(f"SET LOCAL maintenance_work_mem = '{settings.HNSW_BUILD_MEMORY}'")
                editor.execute(f"SET LOCAL max_parallel_maintenance_workers = {int(settings.HNSW_BUILD_WORKERS)}")
                editor.execute(f"DROP INDEX IF EXISTS {quote(index.name)}")
                editor.execute(
                    f"ALTER TABLE {quote(table)} ALTER COLUMN embedding TYPE {vector_storage(kind)}({dimensions}) "
                    f"USING embedding::{kind}({dimensions})"
                )
                editor.execute(index.for_storage(kind).create_sql(Image, editor))
        except Exception as exc:
            raise CommandError(f"Conversion failed, nothing was changed: {exc}") from exc
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {quote(table)}")
