"""The embedding column and its HNSW index, of vector type `vector` (float32) or `halfvec` (float16).

Migrations stay the same for both: the column type and the index operator class are resolved from
VECTOR_STORAGE when the DDL is written. An existing table is converted with
``manage.py vector_storage halfvec`` (or ``vector``), which keeps the data; that command and
migration 0002 rebuild the index with ``rebuild_hnsw_index``.
"""

from __future__ import annotations

import copy

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pgvector.django import HnswIndex, VectorField

# Each vector type with the operator class its cosine HNSW index needs.
VECTOR_TYPES = {"vector": "vector_cosine_ops", "halfvec": "halfvec_cosine_ops"}


def vector_type(name: str | None = None) -> str:
    """``name``, else VECTOR_STORAGE, checked to be one of VECTOR_TYPES."""
    name = name or settings.VECTOR_STORAGE
    if name not in VECTOR_TYPES:
        raise ImproperlyConfigured(f"VECTOR_STORAGE must be one of {', '.join(VECTOR_TYPES)}, not {name!r}.")
    return name


class EmbeddingField(VectorField):
    """A pgvector column of ``dimensions`` floats, of the vector type VECTOR_STORAGE names."""

    def db_type(self, connection) -> str:
        return f"{vector_type()}({self.dimensions})"


class EmbeddingHnswIndex(HnswIndex):
    """An HNSW cosine index whose operator class matches the column's vector type."""

    column_type: str | None = None  # None: VECTOR_STORAGE

    def for_vector_type(self, name: str) -> EmbeddingHnswIndex:
        index = copy.copy(self)
        index.column_type = vector_type(name)
        return index

    def create_sql(self, model, schema_editor, using="", **kwargs):
        index = copy.copy(self)
        index.opclasses = (VECTOR_TYPES[vector_type(self.column_type)],)
        return HnswIndex.create_sql(index, model, schema_editor, using=using, **kwargs)


def vector_type_in_database(connection, model, field: str = "embedding") -> str:
    """The vector type ``model``'s ``field`` column has in the database now (whatever VECTOR_STORAGE says)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
            [model._meta.db_table, model._meta.get_field(field).column],
        )
        (column_type,) = cursor.fetchone()
    return column_type.split("(")[0]


def rebuild_hnsw_index(
    schema_editor,
    model,
    index: EmbeddingHnswIndex,
    *,
    convert_to: str | None = None,
    memory: str | None = None,
    workers: int | None = None,
) -> None:
    """Drop ``index`` and build it again for the column's vector type, converting the column to ``convert_to`` first.

    Run it inside a transaction: ``memory`` and ``workers`` (HNSW_BUILD_MEMORY and
    HNSW_BUILD_WORKERS unless given) hold for that transaction only, and a failure leaves the
    column and its index as they were.
    """
    table, column = model._meta.db_table, model._meta.get_field(index.fields[0])
    quote = schema_editor.quote_name
    memory = memory or settings.HNSW_BUILD_MEMORY
    workers = settings.HNSW_BUILD_WORKERS if workers is None else workers
    # set_config(..., true) is SET LOCAL with the value as a parameter: PostgreSQL checks it, nothing is quoted by hand.
    schema_editor.execute(
        "SELECT set_config('maintenance_work_mem', %s, true), set_config('max_parallel_maintenance_workers', %s, true)",
        [str(memory), str(int(workers))],
    )
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(index.name)}")
    current = vector_type_in_database(schema_editor.connection, model, column.name)
    if convert_to is not None and convert_to != current:
        target = f"{vector_type(convert_to)}({column.dimensions})"
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column.column)} TYPE {target} "
            f"USING {quote(column.column)}::{target}"
        )
        current = convert_to
    schema_editor.execute(index.for_vector_type(current).create_sql(model, schema_editor))
