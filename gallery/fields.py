"""The embedding column and its HNSW index, stored as float32 `vector` or float16 `halfvec` (VECTOR_STORAGE).

Migrations stay the same for both: the column type and the index operator class are resolved from
the setting when the DDL is written. An existing table is converted with
``manage.py vector_storage halfvec`` (or ``vector``), which keeps the data.
"""

from __future__ import annotations

import copy

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pgvector.django import HnswIndex, VectorField

STORAGES = {"vector": "vector_cosine_ops", "halfvec": "halfvec_cosine_ops"}


def vector_storage(kind: str | None = None) -> str:
    kind = kind or settings.VECTOR_STORAGE
    if kind not in STORAGES:
        raise ImproperlyConfigured(f"VECTOR_STORAGE must be one of {', '.join(STORAGES)}, not {kind!r}.")
    return kind


class EmbeddingField(VectorField):
    """A pgvector column of ``dimensions`` floats, float32 or float16 as VECTOR_STORAGE says."""

    def db_type(self, connection) -> str:
        return f"{vector_storage()}({self.dimensions})"


class EmbeddingHnswIndex(HnswIndex):
    """An HNSW cosine index whose operator class matches the column's storage."""

    storage: str | None = None  # None: VECTOR_STORAGE

    def for_storage(self, kind: str) -> EmbeddingHnswIndex:
        index = copy.copy(self)
        index.storage = vector_storage(kind)
        return index

    def create_sql(self, model, schema_editor, using="", **kwargs):
        index = copy.copy(self)
        index.opclasses = (STORAGES[vector_storage(self.storage)],)
        return HnswIndex.create_sql(index, model, schema_editor, using=using, **kwargs)
