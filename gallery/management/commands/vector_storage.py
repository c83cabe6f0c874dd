"""Show or convert the embeddings' vector type: float32 `vector` or float16 `halfvec`.

halfvec halves the table and the HNSW index (bench/README.md has the figures). Converting keeps
every vector: the column is cast in place and the index rebuilt, in one transaction, so a failed
conversion leaves the table as it was. Set VECTOR_STORAGE to the same value afterwards.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from gallery import switch
from gallery.fields import VECTOR_TYPES, rebuild_hnsw_index, vector_type_in_database
from gallery.models import Image

HNSW_INDEX = "gallery_image_embedding_hnsw"


class Command(BaseCommand):
    help = "Show the embeddings' vector type (vector or halfvec), or convert the table to KIND keeping its data."

    def add_arguments(self, parser):
        parser.add_argument("kind", nargs="?", choices=sorted(VECTOR_TYPES), help="Convert to this vector type.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; change nothing.")

    def handle(self, *args, kind, dry_run, **options):
        current = vector_type_in_database(connection, Image)
        next_type = vector_type_in_database(connection, Image, "embedding_next")
        table, field = Image._meta.db_table, Image._meta.get_field("embedding")
        if kind is None:
            self.stdout.write(
                f"{table}.embedding is {current}({field.dimensions}); VECTOR_STORAGE={settings.VECTOR_STORAGE}"
            )
            if next_type != current:
                self.stdout.write(f"{table}.embedding_next is {next_type}({field.dimensions})")
            return
        if kind == current == next_type:
            self.stdout.write(f"{table}.embedding is already {kind}; nothing to do.")
        elif dry_run:
            self.stdout.write(f"Would convert {table}.embedding from {current} to {kind} and rebuild its HNSW index.")
            return
        else:
            self._convert(kind)
            self.stdout.write(self.style.SUCCESS(f"Converted {table}.embedding from {current} to {kind}."))
        if kind != settings.VECTOR_STORAGE:
            self.stdout.write(self.style.WARNING(f"Now set VECTOR_STORAGE={kind} (it is {settings.VECTOR_STORAGE})."))

    def _convert(self, kind: str) -> None:
        (index,) = [i for i in Image._meta.indexes if i.name == HNSW_INDEX]
        try:
            with transaction.atomic(), connection.schema_editor(atomic=False) as editor:
                rebuild_hnsw_index(editor, Image, index, convert_to=kind)
                # The other encoder's column (gallery/switch.py) too, and its index where it has one:
                # the columns swap at a switch, so both must be of one type.
                next_type = vector_type_in_database(connection, Image, "embedding_next")
                if switch.index_state() == "absent":
                    if next_type != kind:
                        column = Image._meta.get_field("embedding_next")
                        target = f"{kind}({column.dimensions})"
                        editor.execute(
                            f"ALTER TABLE {editor.quote_name(Image._meta.db_table)} ALTER COLUMN "
                            f"{editor.quote_name(column.column)} TYPE {target} USING {editor.quote_name(column.column)}::{target}"
                        )
                else:
                    rebuild_hnsw_index(editor, Image, switch.next_index(next_type), convert_to=kind)
        except Exception as exc:
            raise CommandError(f"Conversion failed, nothing was changed: {exc}") from exc
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Image._meta.db_table)}")
