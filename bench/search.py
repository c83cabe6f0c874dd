"""Search benchmark: text search through the HTTP API on 100,000 rows, and the HNSW index's recall.

1. Loads ``--rows`` generated 512-d vectors into a database of their own (the embedded PostgreSQL,
   database ``bench_search``; or DATABASE_URL) with the one bulk loader (gallery/bulkload.py:
   binary COPY), and builds the HNSW index once over them (kept between runs: a second run reuses
   the table). The vectors are clustered like real CLIP image embeddings rather than uniform noise
   (bench/data.py): they share a common direction (every CLIP image vector leans the same way),
   fall in clusters of very different sizes and spreads, and come out at about 0.85 cosine to
   their cluster's centre, 0.7 within a cluster and 0.35 across clusters.
2. Serves the site with gunicorn (``config/gunicorn.conf.py``, one worker) on 127.0.0.1 with the
   full-size stand-in text encoder (``make_standin_encoders --full-size``: the real architecture
   with random weights, so encoding costs what the real encoder costs), and sends ``--queries``
   distinct multilingual text queries to ``GET /api/search`` over one keep-alive HTTP connection.
3. Latency is measured by the client, per request; the server's Server-Timing header splits it
   into ``encode`` (the text encoder) and ``db`` (the transaction: settings, the HNSW query, the
   rows); ``other`` is the rest (HTTP, Django, JSON), per request. Percentiles are over requests.
4. recall@10: the API's first 10 results against the exact 10 nearest (numpy brute force over
   the same vectors, with the same query vectors, encoded again here), at the configured
   ``HNSW_EF_SEARCH``. Also for "data-like" queries (fresh points of the same clusters), through
   the same selector.

Prints one JSON line.

    .venv/bin/python -m bench.search [--rows 100000] [--queries 300] [--ef-search 300] [--backend onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import (
    FULL_SIZE_ENCODERS,
    Client,
    Server,
    argument_parser,
    build_hnsw_index,
    exact_top_k,
    full_size_encoders,
    gunicorn,
    ids_by_row,
    load_rows,
    percentile,
    recall,
    setup_django,
)
from bench.data import GENERATOR, Embeddings, clip_like, queries, text_like


def setup_site(*, models: Path, db: str, **environment: str) -> None:
    """Django as the served site runs it (DEBUG off), with the full-size encoders and the benchmark's database."""
    environment = {
        "SECRET_KEY": "bench-only-not-secret",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "ERROR",
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="bench-search-media-"),
        **full_size_encoders(models),
        **environment,
    }
    if not os.environ.get("DATABASE_URL"):
        environment["EMBEDDED_DB_NAME"] = db
    setup_django(migrate=True, **environment)


def collection(*, rows: int, seed: int, ef_construction: int | None = None) -> tuple[Embeddings, dict[str, float]]:
    """The generated rows, in the database under their HNSW index: loaded once, found there by later runs.

    ``ef_construction`` builds another graph than the migrations' (the one earlier figures were measured on).
    """
    from django.db import connection

    started = time.perf_counter()
    embeddings = clip_like(rows, seed=seed)
    timings = {"generate_s": round(time.perf_counter() - started, 1), "load_s": 0.0}
    marker = f"bench {GENERATOR} rows={rows} seed={seed}" + (
        f" ef_construction={ef_construction}" if ef_construction else ""
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('gallery_image'::regclass, 'pg_class')")
        (comment,) = cursor.fetchone()
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'")
        indexed = cursor.fetchone() is not None
    if comment != marker or not indexed:  # another data set, or a run killed before its index was built
        started = time.perf_counter()
        load_rows(embeddings.vectors, path_of=lambda row: f"topic{embeddings.labels[row] % 50}/{row:06d}.jpg")
        # The whole graph in memory makes the build fast; one parallel worker beside the leader.
        build_hnsw_index(memory="2GB", workers=1, ef_construction=ef_construction)
        with connection.cursor() as cursor:
            cursor.execute(f"COMMENT ON TABLE gallery_image IS '{marker}'")
        timings["load_s"] = round(time.perf_counter() - started, 1)
    connection.close()  # the server makes its own; this process searches again only at the end
    return embeddings, timings


@dataclass
class Latencies:
    """Per request: milliseconds in all and by part, and the ids of the first 10 results."""

    totals: list[float] = field(default_factory=list)
    encodes: list[float] = field(default_factory=list)
    dbs: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    answers: list[list[int]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        def ms(values: list[float], q: float) -> float:
            return round(percentile(values, q), 2)

        return {
            "p50_ms": ms(self.totals, 50),
            "p95_ms": ms(self.totals, 95),
            "encode_p50_ms": ms(self.encodes, 50),
            "db_p50_ms": ms(self.dbs, 50),
            "other_p50_ms": ms(self.others, 50),
            "db_p95_ms": ms(self.dbs, 95),
            "other_p95_ms": ms(self.others, 95),
        }


def measure_api(server: Server, texts: list[str], *, warmup: int, limit: int) -> Latencies:
    """``GET /api/search`` for each text over one connection; the first ``warmup`` are not counted."""
    client = Client(server.port)

    def search(text: str):
        return client.get("/api/search?" + urllib.parse.urlencode({"q": text, "limit": limit}))

    for text in texts[:warmup]:
        search(text)
    latencies = Latencies()
    for text in texts[warmup:]:
        status, body, elapsed, timing = search(text)
        assert status == 200 and len(body["results"]) == limit, (status, body)
        latencies.totals.append(elapsed)
        latencies.encodes.append(timing["encode"])
        latencies.dbs.append(timing["db"])
        latencies.others.append(elapsed - timing["encode"] - timing["db"])
        latencies.answers.append([result["id"] for result in body["results"][:10]])
    return latencies


def measure_recall(embeddings: Embeddings, answers: list[list[int]], texts: list[str], *, seed: int) -> dict:
    """recall@10 of three kinds of queries against exact search, and how near their nearest rows are."""
    from encoders.embeddings import encode_texts
    from search import selectors

    vectors, ids = embeddings.vectors, ids_by_row()

    def truth(query_vectors: np.ndarray) -> np.ndarray:
        return ids[exact_top_k(vectors, query_vectors, 10)]

    def hnsw_top10(query_vectors: np.ndarray) -> list[list[int]]:
        # The selector the API calls once the query is a vector: the same SQL, settings and ef_search.
        return [[image.pk for image in selectors.image_search_by_vector(q, limit=10)] for q in query_vectors]

    def nearest_cosine(query_vectors: np.ndarray) -> float:
        return round(float(np.median([np.max(vectors @ q) for q in query_vectors])), 3)

    # 1. What the API answered for the stand-in's text vectors (encoded again here: the same encoder).
    standin = encode_texts(texts)
    # 2. CLIP-like text queries: the modality gap, a topic.
    text_queries = text_like(embeddings, len(texts), seed=seed + 1)
    # 3. Image-like queries (search by image, the similar walk): fresh points of the same clusters,
    #    the generator's draws past the rows it loaded.
    fresh = clip_like(len(vectors) + 200, seed=seed).vectors[len(vectors) :]
    return {
        # recall@10 against exact search: CLIP-like text queries (the headline), image queries,
        # and the stand-in encoder's own text vectors as the API answered them (random weights).
        "recall_at_10": round(recall(hnsw_top10(text_queries), truth(text_queries)), 4),
        "recall_at_10_image_queries": round(recall(hnsw_top10(fresh), truth(fresh)), 4),
        "recall_at_10_standin_text": round(recall(answers, truth(standin)), 4),
        # Where the queries fall: median cosine to their nearest row (and, for text, to any row).
        "cosine_to_nearest_p50": {
            "text_like": nearest_cosine(text_queries),
            "image_queries": nearest_cosine(fresh),
            "standin_text": nearest_cosine(standin),
        },
        "cosine_text_like_to_any_p50": round(float(np.median(vectors[:2000] @ text_queries.T)), 3),
    }


def arguments() -> argparse.Namespace:
    parser = argument_parser(__doc__, __spec__.name)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--limit", type=int, default=20, help="results per request (the API's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="bench_search", help="embedded database name (without DATABASE_URL)")
    parser.add_argument("--models", type=Path, default=FULL_SIZE_ENCODERS, help="the full-size stand-in encoders")
    parser.add_argument("--ef-search", type=int, help="HNSW_EF_SEARCH for this run (default: the setting's)")
    parser.add_argument("--backend", help="EMBEDDING_BACKEND for the server (default: the environment's, else torch)")
    parser.add_argument("--ef-construction", type=int, help="HNSW ef_construction (default: the migrations')")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    environment = {}  # read by the settings; gunicorn inherits them
    if args.ef_search:
        environment["HNSW_EF_SEARCH"] = str(args.ef_search)
    if args.backend:
        environment["EMBEDDING_BACKEND"] = args.backend
    setup_site(models=args.models, db=args.db, **environment)
    from django.conf import settings

    embeddings, load_timings = collection(rows=args.rows, seed=args.seed, ef_construction=args.ef_construction)
    texts = queries(args.warmup + args.queries)
    with gunicorn(workers=1) as server:
        latencies = measure_api(server, texts, warmup=args.warmup, limit=args.limit)
    line = latencies.summary() | measure_recall(embeddings, latencies.answers, texts[args.warmup :], seed=args.seed)
    line |= {"rows": args.rows, "queries": args.queries, "limit": args.limit, "ef_search": settings.HNSW_EF_SEARCH}
    line |= {"backend": settings.EMBEDDING_BACKEND, "cpu_count": os.cpu_count()}
    line["server"] = "gunicorn config/gunicorn.conf.py, 1 worker (gthread), keep-alive HTTP on 127.0.0.1"
    print(json.dumps(line | load_timings))


if __name__ == "__main__":
    main()
