"""The ground truth searches are checked against: cosine similarity computed in numpy."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from gallery.models import Image


def vector_of(image: Image) -> np.ndarray:
    return np.asarray(Image.objects.get(pk=image.pk).embedding, dtype=np.float32)


def as_compared(query: np.ndarray) -> np.ndarray:
    """The query as the database compares it: against a halfvec column it becomes a halfvec too."""
    if settings.VECTOR_STORAGE == "halfvec":
        return np.asarray(query, dtype=np.float16).astype(np.float32)
    return np.asarray(query, dtype=np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def exact_ranking(query: np.ndarray, *, queryset=None) -> list[int]:
    """Ids by cosine similarity to ``query``, best first (ties by id)."""
    rows = list((queryset if queryset is not None else Image.objects.embedded()).values_list("pk", "embedding"))
    ids = np.array([pk for pk, _ in rows])
    matrix = np.stack([np.asarray(v, dtype=np.float32) for _, v in rows])
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = as_compared(query)
    q = query / np.linalg.norm(query)
    scores = matrix @ q
    order = np.lexsort((ids, -scores))
    return [int(pk) for pk in ids[order]]
