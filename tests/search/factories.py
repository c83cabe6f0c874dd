"""A collection to search, made fast: real files and thumbnails in MEDIA_ROOT, real stand-in vectors, one INSERT.

The vectors come from the same path as ingestion (gallery.imaging.decode, then the image model),
so searching with one of these pictures finds it. Pictures and vectors are cached per process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone

from encoders import embeddings
from gallery import formats
from gallery.imaging import decode
from gallery.models import Image
from gallery.storage import image_name, thumbnail_name
from tests.images import photo

_made: dict[tuple[int, str, str], tuple[bytes, bytes, np.ndarray, int, int]] = {}


def image_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    photo(seed).save(buffer, fmt)
    return buffer.getvalue()


def _prepare(seeds: list[int], fmt: str) -> None:
    model = settings.CLIP_IMAGE_MODEL
    missing = [seed for seed in seeds if (seed, fmt, model) not in _made]
    if not missing:
        return
    data = [image_bytes(seed, fmt) for seed in missing]
    decoded = [decode(io.BytesIO(raw)) for raw in data]
    vectors = embeddings.encode_images([d.image for d in decoded])
    for seed, raw, d, vector in zip(missing, data, decoded, vectors, strict=True):
        _made[(seed, fmt, model)] = (raw, d.thumbnail, vector, d.width, d.height)


def make_images(
    count: int,
    *,
    start: int = 0,
    folder: str = "lib",
    fmt: str = "JPEG",
    taken: dt.datetime | None = None,
    day_step: int = 1,
) -> list[Image]:
    """``count`` embedded images (seeds start..start+count) under ``folder``, taken a day apart from ``taken``."""
    seeds = list(range(start, start + count))
    _prepare(seeds, fmt)
    media = Path(settings.MEDIA_ROOT)
    taken = taken or timezone.make_aware(dt.datetime(2024, 1, 1, 12))
    rows = []
    for i, seed in enumerate(seeds):
        raw, thumbnail, vector, width, height = _made[(seed, fmt, settings.CLIP_IMAGE_MODEL)]
        sha = hashlib.sha256(raw).hexdigest()
        names = {image_name(sha, fmt): raw, thumbnail_name(sha): thumbnail}
        for name, content in names.items():
            target = media / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
        rows.append(
            Image(
                sha256=sha,
                file=image_name(sha, fmt),
                thumbnail=thumbnail_name(sha),
                path=f"{folder}/photo_{seed:04d}.{formats.stored_extension(fmt)}"
                if folder
                else f"photo_{seed:04d}.{formats.stored_extension(fmt)}",
                width=width,
                height=height,
                format=fmt,
                byte_size=len(raw),
                taken_at=taken + dt.timedelta(days=i * day_step),
                embedding=vector,
                encoder=embeddings.image_encoder_id(),
                state=Image.State.EMBEDDED,
            )
        )
    return Image.objects.bulk_create(rows)


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
    """Ids by cosine similarity to ``query``, best first, computed in numpy (the ground truth)."""
    rows = list((queryset if queryset is not None else Image.objects.embedded()).values_list("pk", "embedding"))
    ids = np.array([pk for pk, _ in rows])
    matrix = np.stack([np.asarray(v, dtype=np.float32) for _, v in rows])
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = as_compared(query)
    q = query / np.linalg.norm(query)
    scores = matrix @ q
    order = np.lexsort((ids, -scores))
    return [int(pk) for pk in ids[order]]
