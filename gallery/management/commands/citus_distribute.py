"""Shard the collection with Citus: gallery_image distributed by sha256, each shard with its own HNSW index.

Run it once on the Citus coordinator, after ``migrate``, on a database whose PostgreSQL preloads
citus (``shared_preload_libraries = 'citus'``) and has its worker nodes added. What it changes and
why (docs/scaling.md, "Citus"):

- Citus needs the distribution column in every unique constraint. The content hash is the
  identity of an image, so the table is distributed by ``sha256``: its unique constraint stays as
  it is, and every ``INSERT ... ON CONFLICT (sha256)`` of the app keeps working, routed to one
  shard. The primary key is widened from (id) to (id, sha256); ids still come from the one
  sequence on the coordinator, so they stay unique and the app keeps addressing images by id (a
  look-up by id alone asks every shard, on its primary-key index).
- ``gallery_encoderpairs`` (one row) becomes a reference table: on every node, read locally.

Search needs nothing more: ``ORDER BY embedding <=> q LIMIT n`` runs on every shard against its
own HNSW index and the coordinator merges; its settings are sent as SET LOCAL, which Citus passes
on to the shards (search/selectors.py ``scan_settings_sql``).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction

from gallery.models import EncoderPairs, Image


def citus_available(cursor) -> tuple[bool, str]:
    """(usable, why not): the extension must be installable and preloaded."""
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'citus'")
    if cursor.fetchone() is None:
        return False, "this PostgreSQL has no citus extension (install Citus on every node; docs/scaling.md)"
    cursor.execute("SELECT current_setting('shared_preload_libraries')")
    if "citus" not in [name.strip() for name in cursor.fetchone()[0].split(",")]:
        return False, "citus is installed but not preloaded: add it to shared_preload_libraries and restart"
    return True, ""


class Command(BaseCommand):
    help = "Distribute gallery_image over the Citus cluster by sha256 (run once on the coordinator)."

    def add_arguments(self, parser):
        parser.add_argument("--shard-count", type=int, default=None, help="Shards (Citus's default: 32).")
        parser.add_argument("--dry-run", action="store_true", help="Print the statements; change nothing.")

    def handle(self, *args, shard_count, dry_run, **options):
        with connection.cursor() as cursor:
            usable, why = citus_available(cursor)
            if not usable:
                raise CommandError(f"Cannot distribute: {why}.")
            statements = self.statements(cursor, shard_count)
        if dry_run:
            for statement, params in statements:
                self.stdout.write(statement % tuple(repr(p) for p in params) if params else statement)
            return
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for statement, params in statements:
                    cursor.execute(statement, params)
        except DatabaseError as exc:
            raise CommandError(f"Distribution failed, nothing was changed: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"{Image._meta.db_table} is distributed by sha256."))

    def statements(self, cursor, shard_count: int | None) -> list[tuple[str, list]]:
        table, pairs = Image._meta.db_table, EncoderPairs._meta.db_table
        quote = connection.ops.quote_name
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [table],
        )
        (primary_key,) = cursor.fetchone()
        # pg_dist_partition exists only once the extension is created (the first statement below).
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
        if cursor.fetchone() is not None:
            cursor.execute("SELECT 1 FROM pg_dist_partition WHERE logicalrelid = %s::regclass", [table])
            if cursor.fetchone() is not None:
                raise CommandError(f"{table} is distributed already.")
        statements = [
            ("CREATE EXTENSION IF NOT EXISTS citus", []),
            (
                f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(primary_key)}, "
                f"ADD CONSTRAINT {quote(primary_key)} PRIMARY KEY (id, sha256)",
                [],
            ),
        ]
        if shard_count:
            statements.append(
                ("SELECT create_distributed_table(%s, 'sha256', shard_count => %s)", [table, shard_count])
            )
        else:
            statements.append(("SELECT create_distributed_table(%s, 'sha256')", [table]))
        statements.append(("SELECT create_reference_table(%s)", [pairs]))
        return statements
