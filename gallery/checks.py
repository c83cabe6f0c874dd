"""System checks for the collection's settings: the vector column, its HNSW index, files and ingestion.

``whole_number`` and ``seconds`` are shared with search/checks.py and core/checks.py (the layers above).
"""

from __future__ import annotations

import math
import re

from django.conf import settings
from django.core.checks import Error

from .fields import VECTOR_TYPES

# pgvector's HNSW index takes at most this many dimensions for each vector type.
HNSW_MAX_DIMENSIONS = {"vector": 2000, "halfvec": 4000}
# PostgreSQL's maintenance_work_mem: a whole or decimal number, units as PostgreSQL spells them
# (no unit: kB), from 64kB to 2147483647kB.
MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)?\s*")
KILOBYTES = {"B": 1 / 1024, "kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3, None: 1}
MEMORY_KB_RANGE = (64, 2147483647)
# PostgreSQL's range for max_parallel_maintenance_workers.
MAX_BUILD_WORKERS = 1024


def whole_number(setting: str, value, *, low: int, high: float = math.inf, id: str, hint: str = "") -> list[Error]:
    """An error unless ``value`` is a whole number from ``low`` to ``high``."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return []
    span = f" from {low} to {high}" if high < math.inf else f", {low} or more"
    return [Error(f"{setting} must be a whole number{span}, not {value!r}.", hint=hint or None, id=id)]


def seconds(setting: str, value, *, zero: bool = False, id: str, hint: str = "") -> list[Error]:
    """An error unless ``value`` is a finite number of seconds above 0 (``zero``: 0 or more)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (value >= 0 if zero else value > 0) and value < math.inf:
        return []
    span = "0 or more" if zero else "above 0"
    return [Error(f"{setting} must be a number of seconds {span}, not {value!r}.", hint=hint or None, id=id)]


def check_gallery_settings(app_configs=None, **kwargs) -> list[Error]:
    """The vector column and its HNSW index, thumbnails, uploads and ingestion."""
    return [
        *_vector_type(),
        *_dimensions(),
        *_build_memory(),
        *whole_number(
            "HNSW_BUILD_WORKERS", settings.HNSW_BUILD_WORKERS, low=0, high=MAX_BUILD_WORKERS, id="gallery.E004"
        ),
        *whole_number("THUMBNAIL_SIZE", settings.THUMBNAIL_SIZE, low=1, id="gallery.E005"),
        *whole_number("IMAGE_MAX_PIXELS", settings.IMAGE_MAX_PIXELS, low=1, id="gallery.E006"),
        *whole_number("UPLOAD_MAX_BYTES", settings.UPLOAD_MAX_BYTES, low=1, id="gallery.E007"),
        *seconds("INGEST_FILE_TIMEOUT", settings.INGEST_FILE_TIMEOUT, id="gallery.E008"),
        *whole_number("EMBED_TASK_BATCH", settings.EMBED_TASK_BATCH, low=1, id="gallery.E009"),
        *_background(),
    ]


def _background() -> list[Error]:
    """The broker URL names a transport Celery has, and the queue has a name (only with a broker)."""
    url = settings.CELERY_BROKER_URL
    if not url:
        return []
    errors = []
    scheme = url.partition("://")[0]
    if scheme not in ("redis", "rediss", "redis+socket", "sentinel"):
        errors.append(
            Error(
                f"CELERY_BROKER_URL must be a Redis URL (redis://, rediss://, redis+socket://), not {url!r}.",
                hint="The workers are tested with Redis; leave it empty to embed in-process.",
                id="gallery.E010",
            )
        )
    if not settings.EMBED_QUEUE.strip():
        errors.append(Error("EMBED_QUEUE must name a queue (default embed).", id="gallery.E011"))
    limit = settings.CELERY_TASK_TIME_LIMIT
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    if not (isinstance(limit, int) and isinstance(visibility, int) and 0 < limit < visibility):
        errors.append(
            Error(
                f"EMBED_TASK_TIME_LIMIT ({limit}) must be above 0 and below CELERY_VISIBILITY_TIMEOUT ({visibility}).",
                hint="Otherwise Redis hands a batch that is still running to a second worker.",
                id="gallery.E012",
            )
        )
    return errors


def _vector_type() -> list[Error]:
    kind = settings.VECTOR_STORAGE
    if kind in VECTOR_TYPES:
        return []
    return [
        Error(
            f"VECTOR_STORAGE must be one of {', '.join(VECTOR_TYPES)}, not {kind!r}.",
            hint="halfvec stores float16 vectors (half the table and index), vector float32.",
            id="gallery.E001",
        )
    ]


def _dimensions() -> list[Error]:
    kind = settings.VECTOR_STORAGE
    if kind not in HNSW_MAX_DIMENSIONS:  # a wrong VECTOR_STORAGE is gallery.E001's; the loosest limit here
        kind = max(HNSW_MAX_DIMENSIONS, key=HNSW_MAX_DIMENSIONS.get)
    return whole_number(
        "EMBEDDING_DIMENSIONS",
        settings.EMBEDDING_DIMENSIONS,
        low=1,
        high=HNSW_MAX_DIMENSIONS[kind],
        id="gallery.E002",
        hint=f"pgvector's HNSW index takes at most {HNSW_MAX_DIMENSIONS[kind]} dimensions of {kind}; "
        "both encoders must make vectors of this size (512 for CLIP ViT-B/32).",
    )


def memory_kilobytes(text: str) -> int | None:
    """A PostgreSQL memory size ("1GB", "512MB", "65536") in kB; None when it is not one."""
    match = MEMORY.fullmatch(str(text))
    if match is None:
        return None
    return round(float(match.group(1)) * KILOBYTES[match.group(2)])  # PostgreSQL rounds to whole kB


def _build_memory() -> list[Error]:
    value = settings.HNSW_BUILD_MEMORY
    size = memory_kilobytes(value)
    low, high = MEMORY_KB_RANGE
    if size is not None and low <= size <= high:
        return []
    return [
        Error(
            f"HNSW_BUILD_MEMORY must be a PostgreSQL memory size from 64kB to 2147483647kB (just under 2TB), "
            f"such as 512MB or 1GB, not {value!r}.",
            hint="Units are case-sensitive, as PostgreSQL spells them: B, kB, MB, GB, TB (no unit: kB).",
            id="gallery.E003",
        )
    ]
