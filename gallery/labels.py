"""Zero-shot labels: the words of the vocabulary (``Concept``) that an image's stored vector is nearest to.

Probabilities are computed as CLIP computes them for zero-shot classification: a softmax over the
whole vocabulary of ``logit_scale * cosine(image vector, concept vector)``. The scale is the image
encoder's own learned ``logit_scale`` (CLIPModel keeps its log; exp of it) when the
sentence-transformers model exposes it, else 100: the value OpenAI's CLIP models end training at
(clamped there), which the multilingual text twins were distilled against. No image is decoded: the
vectors come from ``Image.embedding``, read in chunks by binary COPY and multiplied by the
vocabulary's matrix in numpy (bench/labels.py, figures in bench/README.md).

A concept's vector is the mean of the unit vectors of all its names (every language), made by the
active text encoder, normalised again (CLIP's "prompt ensembling"). ``Concept.vector_key`` records
which names and encoder made it. The vocabulary's *version* is a digest of every concept's
vector_key, both encoders and the parameters below: an image labelled under another version
(``LabelledImage``) is stale and ``label_images`` does it again; so is every image after a change of
vocabulary or of encoders.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.db import DatabaseError, connection, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from encoders import embeddings

from . import switch
from .models import Concept, Image, ImageLabel, LabelledImage

# Kept per image: the MAX_LABELS most probable labels, each at least MIN_PROBABILITY. The floor is
# low on purpose: one softmax over concepts of different sorts (a kind, a colour, a place) gives
# most of the mass to one of them, and the second and third true labels of the world's pictures
# come at about 0.01 (bench/README.md, "Labels"; a floor of 0.001 cost 0.04 of precision@3).
# Pages and filters may ask for more than this floor; storing is bounded by MAX_LABELS anyway.
MAX_LABELS = 10
MIN_PROBABILITY = 0.0001
# CLIP's logit scale when the encoder's own cannot be read (see the module's docstring).
DEFAULT_LOGIT_SCALE = 100.0
CHUNK_SIZE = 20_000

logger = logging.getLogger(__name__)


def logit_scale(image_model: str) -> float:
    """The image encoder's learned logit scale (exp of CLIPModel.logit_scale), else DEFAULT_LOGIT_SCALE."""
    try:
        encoder = embeddings.get_image_encoder(image_model)
        parameter = encoder[0].model.logit_scale
    except (AttributeError, TypeError, IndexError, KeyError):
        return DEFAULT_LOGIT_SCALE  # ONNX or a model without one
    # CLIP clamps the scale at 100 in training; so does this.
    return float(min(math.exp(float(parameter.detach().cpu())), 100.0))


def concept_names(names: dict) -> list[str]:
    """Every name of a concept, all languages, without blanks or repeats, in a stable order."""
    seen = []
    for language in sorted(names):
        for name in names[language] or []:
            name = str(name).strip()
            if name and name not in seen:
                seen.append(name)
    return seen


def text_encoder_id(text_model: str) -> str:
    # The same naming as the image encoder's id: a folder gets a fingerprint of its content.
    return embeddings.image_encoder_id(text_model)


def vector_key(names: dict, text_id: str) -> str:
    payload = json.dumps([concept_names(names), text_id], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def embed_concepts(text_model: str, *, batch_size: int = 256) -> int:
    """Embed the concepts whose names or text encoder changed; returns how many."""
    text_id = text_encoder_id(text_model)
    stale = [
        c for c in Concept.objects.only("id", "names", "vector_key") if c.vector_key != vector_key(c.names, text_id)
    ]
    for start in range(0, len(stale), batch_size):
        batch = stale[start : start + batch_size]
        texts, owners = [], []
        for index, concept in enumerate(batch):
            names = concept_names(concept.names) or [concept.key.replace("-", " ")]
            texts += names
            owners += [index] * len(names)
        vectors = _unit(embeddings.encode_texts(texts, model=text_model))
        owners = np.asarray(owners)
        for index, concept in enumerate(batch):
            concept.vector = _unit(vectors[owners == index].mean(axis=0))
            concept.vector_key = vector_key(concept.names, text_id)
        Concept.objects.bulk_update(batch, ["vector", "vector_key"])
    return len(stale)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


@dataclass(frozen=True)
class Vocabulary:
    ids: np.ndarray  # concept ids, int64
    matrix: np.ndarray  # (concepts, dimensions) unit vectors, float32
    scale: float
    version: str
    image_encoder: str  # the id stored beside the vectors it labels
    generation: int

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(images, concepts) softmax of scale * cosine; rows of ``vectors`` need not be unit length."""
        logits = _unit(vectors) @ (self.matrix.T * np.float32(self.scale))
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def top(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, concept id, probability) of each kept label: the MAX_LABELS most probable above MIN_PROBABILITY."""
        probabilities = self.probabilities(vectors)
        k = min(MAX_LABELS, probabilities.shape[1])
        columns = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(probabilities)), k)
        columns = columns.ravel()
        values = probabilities[rows, columns]
        keep = values >= MIN_PROBABILITY
        return rows[keep], self.ids[columns[keep]], values[keep].astype(np.float64)


def vocabulary(encoders: switch.Encoders | None = None) -> Vocabulary | None:
    """The vocabulary of the active pair, its stale concepts embedded first; None when it is empty."""
    encoders = encoders or switch.current(fresh=True)
    embed_concepts(encoders.active.text)
    rows = list(Concept.objects.exclude(vector=None).order_by("id").values_list("id", "vector", "vector_key"))
    if not rows:
        return None
    scale = logit_scale(encoders.active.image)
    image_id = embeddings.image_encoder_id(encoders.active.image)
    digest = hashlib.sha256()
    for concept_id, _, key in rows:
        digest.update(f"{concept_id}:{key};".encode())
    digest.update(
        json.dumps([image_id, text_encoder_id(encoders.active.text), scale, MAX_LABELS, MIN_PROBABILITY]).encode()
    )
    return Vocabulary(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        matrix=_unit(np.stack([np.asarray(r[1], dtype=np.float32) for r in rows])),
        scale=scale,
        version=digest.hexdigest()[:32],
        image_encoder=image_id,
        generation=encoders.generation,
    )


# Reading vectors (``embedding`` holds the active image encoder's, gallery/switch.py; the version names it): binary COPY rows of (id bigint, embedding::vector), all the same size.
def _row_dtype(dimensions: int) -> np.dtype:
    return np.dtype(
        [
            ("fields", ">i2"),
            ("id_length", ">i4"),
            ("id", ">i8"),
            ("vector_length", ">i4"),
            ("dimensions", ">u2"),
            ("unused", ">u2"),
            ("vector", ">f4", (dimensions,)),
        ]
    )


_STALE = f"""
    FROM {Image._meta.db_table} i LEFT JOIN {LabelledImage._meta.db_table} l ON l.image_id = i.id
    WHERE i.state = 'embedded' AND i.embedding IS NOT NULL AND (l.image_id IS NULL OR l.version <> %s)
"""


def stale_count(vocab: Vocabulary) -> int:
    """Embedded images whose labels are missing or were computed under another version."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) {_STALE}", [vocab.version])
        return cursor.fetchone()[0]


def _read(cursor, vocab: Vocabulary, where: str, params: list) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the rows the query ``SELECT i.id, i.embedding::vector <where>`` gives."""
    query = f"COPY (SELECT i.id, i.embedding::vector {where}) TO STDOUT (FORMAT BINARY)"
    buffer = bytearray()
    with cursor.cursor.copy(query, params) as copy:
        for block in copy:
            buffer += block
    # 19 bytes of header (no extension), 2 of trailer.
    body = memoryview(buffer)[19:-2]
    dimensions = vocab.matrix.shape[1]
    rows = np.frombuffer(body, dtype=_row_dtype(dimensions))
    if len(rows) and (rows["dimensions"] != dimensions).any():
        raise ValueError("stored vectors and the vocabulary's have different dimensions")
    return rows["id"].astype(np.int64), rows["vector"].astype(np.float32)


def _label_copy(image_ids: np.ndarray, concept_ids: np.ndarray, probabilities: np.ndarray) -> bytes:
    rows = np.empty(
        len(image_ids),
        dtype=[
            ("fields", ">i2"),
            ("l1", ">i4"),
            ("image", ">i8"),
            ("l2", ">i4"),
            ("concept", ">i8"),
            ("l3", ">i4"),
            ("probability", ">f8"),
        ],
    )
    rows["fields"], rows["l1"], rows["l2"], rows["l3"] = 3, 8, 8, 8
    rows["image"], rows["concept"], rows["probability"] = image_ids, concept_ids, probabilities
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    return header + rows.tobytes() + (-1).to_bytes(2, "big", signed=True)


def label_chunk(vocab: Vocabulary, after: int, limit: int) -> tuple[int, int]:
    """Label the next ``limit`` stale images after id ``after``, in one transaction: (images, last id)."""
    return _label(vocab, f"{_STALE} AND i.id > %s ORDER BY i.id LIMIT %s", [vocab.version, after, limit], after)


def _label(vocab: Vocabulary, where: str, params: list, after: int = 0) -> tuple[int, int]:
    """Label the images ``where`` selects, in one transaction: (images, last id).

    The encoder pairs are checked in the transaction, after the read (switch.check): a switch of
    encoders under the run stops it with PairChanged, and the chunk is rolled back.
    """
    table, labelled = ImageLabel._meta.db_table, LabelledImage._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        ids, vectors = _read(cursor, vocab, where, params)
        switch.check(vocab.generation)
        if not len(ids):
            return 0, after
        rows, concepts, probabilities = vocab.top(vectors)
        id_list = ids.tolist()
        cursor.execute(f"DELETE FROM {table} WHERE image_id = ANY(%s)", [id_list])
        with cursor.cursor.copy(
            f"COPY {table} (image_id, concept_id, probability) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.write(_label_copy(ids[rows], concepts, probabilities))
        cursor.execute(
            f"""INSERT INTO {labelled} (image_id, version) SELECT unnest(%s::bigint[]), %s
                ON CONFLICT (image_id) DO UPDATE SET version = EXCLUDED.version""",
            [id_list, vocab.version],
        )
    return len(ids), int(ids[-1])


# New images are labelled as they are embedded (gallery/services.py, gallery/background.py), with
# the vocabulary read again only when the concepts or the encoder pairs changed.
_new = threading.local()


def _concepts_state() -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), max(updated_at) FROM {Concept._meta.db_table}")
        return tuple(cursor.fetchone())


def _vocabulary_for_new() -> Vocabulary | None:
    encoders = switch.current()
    state = _concepts_state()
    if not state[0]:
        return None
    cached = getattr(_new, "value", None)
    if cached is not None and _new.key == (state, encoders):
        return cached
    vocab = vocabulary(encoders)
    _new.value, _new.key = vocab, (_concepts_state(), encoders)  # embedding stale concepts changed the state
    return vocab


def label_new(*, ids: list[int] | None = None, sha256s: list[str] | None = None) -> int:
    """Label images just embedded (by id or sha256); 0 without a vocabulary. Never raises for the caller.

    Embedding must not fail because labelling did: on an error the images stay unlabelled, with a
    warning in the log, and ``manage.py label_images`` labels them later (they are stale).
    """
    try:
        vocab = _vocabulary_for_new()
        if vocab is None:
            return 0
        where = "FROM gallery_image i WHERE i.state = 'embedded' AND i.embedding IS NOT NULL AND "
        if sha256s is not None:
            done, _ = _label(vocab, where + "i.sha256 = ANY(%s)", [list(sha256s)])
        else:
            done, _ = _label(vocab, where + "i.id = ANY(%s)", [list(ids or [])])
        return done
    except (DatabaseError, embeddings.EncoderUnavailable, switch.PairChanged, ValueError) as exc:
        logger.warning("New images left unlabelled (manage.py label_images labels them): %s", exc)
        return 0


def label_images(
    *, chunk_size: int = CHUNK_SIZE, progress: Callable[[int], None] | None = None, vocab: Vocabulary | None = None
) -> int:
    """Label every stale image of the collection, chunk by chunk (each its own transaction: resumable)."""
    vocab = vocab or vocabulary()
    if vocab is None:
        return 0
    done, after = 0, 0
    while True:
        count, after = label_chunk(vocab, after, chunk_size)
        if not count:
            return done
        done += count
        if progress:
            progress(count)


def image_labels(image_id: int, *, using: str = "default") -> list[tuple[Concept, float]]:
    """An image's stored labels, most probable first."""
    labels = (
        ImageLabel.objects.using(using).filter(image_id=image_id).select_related("concept").order_by("-probability")
    )
    return [(label.concept, label.probability) for label in labels]


# An image carries the labels it ranks first: its three most probable, the set that label
# precision@3 and recall@3 measure (bench/README.md, "Labels"). The filter label:NAME keeps the
# images whose top three hold a concept of that name.
CARRIED = 3

_CARRIES = f"""EXISTS (SELECT 1 FROM (SELECT l.concept_id FROM {ImageLabel._meta.db_table} l
    WHERE l.image_id = "{Image._meta.db_table}"."id" ORDER BY l.probability DESC LIMIT {CARRIED}) top
    WHERE top.concept_id = ANY(%s))"""


def concepts_named(name: str, *, using: str = "default") -> list[int]:
    """The ids of the concepts whose key or one of whose names (any language) is ``name``, ignoring case."""
    wanted = name.strip().casefold()
    return [
        pk
        for pk, key, names in Concept.objects.using(using).values_list("pk", "key", "names")
        if key.casefold() == wanted or any(n.casefold() == wanted for n in concept_names(names))
    ]


def carrying(queryset, concept_ids: list[int]):
    """``queryset`` (of Image) narrowed to the images whose top labels hold one of ``concept_ids``.

    A correlated EXISTS per candidate row, answered by the label table's primary key (it leads with
    the image), so it also works inside the HNSW index's iterative scan.
    """
    condition = RawSQL(_CARRIES, (list(concept_ids),), output_field=BooleanField())
    return queryset.filter(condition)
