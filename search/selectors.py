"""Reads: turning a query into ranked images from the HNSW index."""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from gallery.models import Image

from . import embeddings


def _set_ef_search(limit: int) -> None:
    # HNSW returns at most ef_search candidates, so a deep page needs a larger ef_search.
    ef = min(max(settings.HNSW_EF_SEARCH, limit), 1000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])


def image_search_by_vector(vector, *, limit: int, offset: int = 0, exclude_id: int | None = None) -> list[Image]:
    """The ``limit`` images nearest to ``vector``, each with ``distance`` and ``score`` set."""
    queryset = Image.objects.nearest_to(vector)
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    with transaction.atomic():
        _set_ef_search(offset + limit)
        images = list(queryset[offset : offset + limit])
    for image in images:
        image.score = 1.0 - image.distance
    return images


def image_search_by_text(text: str, *, limit: int, offset: int = 0) -> list[Image]:
    return image_search_by_vector(embeddings.encode_text(text), limit=limit, offset=offset)


def image_search_by_image(pil_image, *, limit: int, offset: int = 0) -> list[Image]:
    return image_search_by_vector(embeddings.encode_images([pil_image])[0], limit=limit, offset=offset)
