"""The one bulk loader: rows with ready vectors written by binary COPY, for imports and benchmarks.

``images_upsert`` (gallery/services.py) writes a batch that ingestion decoded and embedded; this
writes rows whose vectors already exist (made elsewhere, or generated for a benchmark: bench/
loads a million with it). The rows go into a staging table in PostgreSQL's binary COPY format,
built with numpy in one pass (no per-float text formatting), then one
INSERT ... SELECT ... ON CONFLICT (sha256) DO UPDATE writes them, so a load is as idempotent as
``images_upsert``. The staging column is float32 ``vector``; PostgreSQL casts it to whatever the
embedding column holds (``vector`` or ``halfvec``).

A loaded row is "embedded", its file name is its path, and it has no thumbnail: search finds it,
and its picture is whatever storage holds under that name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.db import connection, transaction

from .models import Image

# PostgreSQL's binary COPY signature, flags and header extension length; the trailer ends the data.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# psycopg sends what it is given in one piece; pieces of 8 MiB keep a large load's memory flat.
COPY_CHUNK = 8 << 20


def images_copy(*, sha256s: Sequence[str], paths: Sequence[str], vectors, encoder_id: str) -> int:
    """Write one row per (sha256, path, vector), embedded by ``encoder_id``; returns the rows written.

    A sha256 already in the table gets the new path, vector and encoder (ON CONFLICT DO UPDATE).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dimensions = vectors.shape
    if not (len(sha256s) == len(paths) == count):
        raise ValueError("sha256s, paths and vectors must have the same length")
    payload = copy_payload(sha256s=sha256s, paths=paths, vectors=vectors)
    with transaction.atomic(), connection.cursor() as cursor:
        # Dropped at the end, not ON COMMIT: inside a caller's transaction a second load would find it.
        cursor.execute(f"CREATE TEMP TABLE image_copy_staging (sha256 text, path text, embedding vector({dimensions}))")
        with cursor.cursor.copy(
            "COPY image_copy_staging (sha256, path, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            for offset in range(0, len(payload), COPY_CHUNK):
                copy.write(payload[offset : offset + COPY_CHUNK])
        cursor.execute(
            f"""
            INSERT INTO {Image._meta.db_table} (sha256, path, file, thumbnail, format, embedding, encoder, state,
                                 error, created_at, updated_at)
            SELECT sha256, path, path, '', '', embedding, %s, 'embedded', '', now(), now()
            FROM image_copy_staging
            ON CONFLICT (sha256) DO UPDATE SET
                path = EXCLUDED.path, embedding = EXCLUDED.embedding,
                encoder = EXCLUDED.encoder, state = 'embedded', error = '', updated_at = now()
            """,
            [encoder_id],
        )
        written = cursor.rowcount
        cursor.execute("DROP TABLE image_copy_staging")
    return written


def copy_payload(*, sha256s: Sequence[str], paths: Sequence[str], vectors: np.ndarray) -> bytes:
    """Binary COPY data of rows (sha256 text, path text, embedding vector), header and trailer included."""
    count, dimensions = vectors.shape
    path_bytes = [p.encode() for p in paths]
    width = max(1, max((len(p) for p in path_bytes), default=0))
    # Each row: field count, then each field as its length and its bytes; a pgvector ``vector`` is
    # its dimension count, an unused int16 and the float32s, all big-endian.
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("sha_len", ">i4"),
            ("sha", "S64"),
            ("path_len", ">i4"),
            ("path", f"S{width}"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dimensions,)),
        ]
    )
    data = np.zeros(count, dtype=row)
    data["fields"] = 3
    data["sha_len"] = 64
    data["sha"] = np.array([s.encode() for s in sha256s], dtype="S64")
    lengths = np.array([len(p) for p in path_bytes], dtype=">i4")
    data["path_len"] = lengths
    data["path"] = np.array(path_bytes, dtype=f"S{width}")
    data["vec_len"] = 4 + 4 * dimensions
    data["dim"] = dimensions
    data["values"] = vectors
    raw = data.tobytes()
    if (lengths == width).all():
        return COPY_HEADER + raw + COPY_TRAILER
    # Paths of different lengths: cut each row's fixed-width path field back to its own length.
    size, path_offset = row.itemsize, row.fields["path"][1]
    body = b"".join(
        raw[start : start + path_offset + length] + raw[start + path_offset + width : start + size]
        for start, length in zip(range(0, count * size, size), lengths.tolist(), strict=True)
    )
    return COPY_HEADER + body + COPY_TRAILER
