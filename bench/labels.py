"""Labels benchmark: how long ``label_images`` takes over N stored vectors with the default vocabulary.

Loads N random unit vectors (halfvec, as a site stores them) with the one bulk loader into its own
embedded database, loads the default vocabulary (gallery/data/vocabulary.txt) with random unit
concept vectors (the text encoder is not what is timed: embedding 681 names is seconds, once), then
times gallery.labels.label_images: binary COPY of each chunk of vectors, the softmax over the
vocabulary in numpy, binary COPY of the kept labels and the versions. A second run over the same
rows (nothing stale) times the incremental check. One JSON line.

    .venv/bin/python -m bench.labels --rows 100000
"""

from __future__ import annotations

import json
import time

import numpy as np

from bench.common import argument_parser, load_rows, setup_django


def main() -> None:
    parser = argument_parser(__doc__, "bench.labels")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    args = parser.parse_args()
    setup_django(migrate=True, DEBUG="1", EMBEDDED_DB_NAME="bench_labels", VECTOR_STORAGE="halfvec")

    from django.db import connection

    from gallery import labels, switch, vocabulary
    from gallery.models import Concept, ImageLabel

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((args.rows, 512), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    facts: dict = {"rows": args.rows, "chunk_size": args.chunk_size}
    facts["load_s"] = round(load_rows(vectors, path_of=lambda row: f"bench/{row}.jpg"), 1)

    Concept.objects.all().delete()
    vocabulary.load(vocabulary.read_default(), source="default")
    concepts = list(Concept.objects.all())
    concept_vectors = rng.standard_normal((len(concepts), 512), dtype=np.float32)
    concept_vectors /= np.linalg.norm(concept_vectors, axis=1, keepdims=True)
    for concept, vector in zip(concepts, concept_vectors, strict=True):
        concept.vector, concept.vector_key = vector, "bench"
    Concept.objects.bulk_update(concepts, ["vector", "vector_key"])
    facts["concepts"] = len(concepts)
    ids = np.array([c.id for c in concepts], dtype=np.int64)
    # Random vectors are far from every concept: CLIP's scale gives a flat softmax. A real photo's is
    # peaked, and keeps fewer labels; MAX_LABELS bounds the rows written either way.
    vocab = labels.Vocabulary(
        ids=ids,
        matrix=concept_vectors,
        scale=100.0,
        version="bench",
        image_encoder="bench",
        generation=switch.current().generation,
    )

    started = time.perf_counter()
    done = labels.label_images(chunk_size=args.chunk_size, vocab=vocab)
    elapsed = time.perf_counter() - started
    assert done == args.rows, (done, args.rows)
    facts["label_s"] = round(elapsed, 2)
    facts["images_per_s"] = round(done / elapsed)
    facts["million_images_min"] = round(1_000_000 / (done / elapsed) / 60, 1)
    facts["labels_written"] = ImageLabel.objects.count()

    started = time.perf_counter()
    assert labels.stale_count(vocab) == 0 and labels.label_images(chunk_size=args.chunk_size, vocab=vocab) == 0
    facts["nothing_stale_s"] = round(time.perf_counter() - started, 2)

    # The numpy part alone, on one chunk: what the database costs is the rest.
    chunk = vectors[: args.chunk_size]
    started = time.perf_counter()
    vocab.top(chunk)
    facts["numpy_per_chunk_s"] = round(time.perf_counter() - started, 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('gallery_imagelabel'))")
        facts["label_table_size"] = cursor.fetchone()[0]
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
