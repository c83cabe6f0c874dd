"""Scale benchmark: a million clustered vectors in PostgreSQL + pgvector, loaded, indexed and queried.

Generates N unit vectors from a mixture of Gaussian clusters (so neighbours behave like real
embeddings, not uniform noise; bench/data.py), loads them with the one bulk loader
(gallery/bulkload.py: binary COPY), builds the HNSW index with parallel maintenance workers, and
for held-out queries measures single-connection p50/p95 latency and recall@10 against exact search
(numpy brute force over the same vectors) at several ef_search values, plus throughput with
concurrent connections. One JSON line per configuration.

    .venv/bin/python -m bench.scale --rows 1000000 --storage vector [--data clip-like] [--ef 100,300,400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

import numpy as np

from bench.common import (
    argument_parser,
    build_hnsw_index,
    exact_top_k,
    ids_by_row,
    load_rows,
    percentile,
    recall,
    setup_django,
)
from bench.data import DIMENSIONS, clip_like, clustered_vectors

# The bare index query: rows without a vector are not in the index, so no filter is needed here.
QUERY = "SELECT id FROM gallery_image ORDER BY embedding <=> %s LIMIT 10"


def database_name(args: argparse.Namespace) -> str:
    """A database per storage and data set; another graph (--m, --ef-construction) gets its own, keeping the default one."""
    name = f"bench_scale_{args.storage}" + ("_cliplike" if args.data == "clip-like" else "")
    if args.m or args.ef_construction:
        name += f"_m{args.m or ''}_ef{args.ef_construction or ''}"
    return name


def draw(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The rows and the held-out queries: one draw of rows + queries, so the queries are fresh points of the same clusters."""
    total = args.rows + args.queries
    if args.data == "clip-like":
        drawn = clip_like(total, seed=1, clusters=args.clusters).vectors
    else:
        drawn = clustered_vectors(total, DIMENSIONS, args.clusters, seed=1, spread=args.spread)
    return drawn[: args.rows], drawn[args.rows :]


def load(args: argparse.Namespace, data: np.ndarray) -> dict[str, float]:
    """Load and index the rows, unless --reuse finds them there already."""
    from gallery.models import Image

    if args.reuse and Image.objects.count() == args.rows:
        return {}
    load_s = load_rows(data, path_of=lambda row: f"bench/{row}.jpg")
    build_s = build_hnsw_index(
        memory=args.build_memory, workers=args.build_workers, m=args.m, ef_construction=args.ef_construction
    )
    return {"load_s": round(load_s, 1), "index_build_s": round(build_s, 1)}


def table_facts() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size('gallery_image') - pg_indexes_size('gallery_image'), "
            "pg_relation_size('gallery_image_embedding_hnsw')"
        )
        table, index = cursor.fetchone()
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'")
        (indexdef,) = cursor.fetchone()
    return {
        "table_mb": round(table / 2**20, 1),
        "index_mb": round(index / 2**20, 1),
        "index": indexdef.split(" USING ")[1],
    }


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def prepare_session(cursor, ef_search: int) -> None:
    # The planner's HNSW cost grows with ef_search; on small tables it may then prefer an exact scan.
    # Keep it on the index, as the site's queries are.
    cursor.execute("SET hnsw.ef_search = %s", [ef_search])
    cursor.execute("SET enable_seqscan = off")


def run_queries(queries: list[str], ef_search: int) -> tuple[list[float], list[list[int]]]:
    """Milliseconds and the ids found for each query, one after another on one connection."""
    from django.db import connection

    latencies, results = [], []
    with connection.cursor() as cursor:
        prepare_session(cursor, ef_search)
        cursor.execute("EXPLAIN " + QUERY, [queries[0]])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Index Scan using gallery_image_embedding_hnsw" in plan, plan[:500]
        for text in queries:
            started = time.perf_counter()
            cursor.execute(QUERY, [text])
            ids = [row[0] for row in cursor.fetchall()]
            latencies.append((time.perf_counter() - started) * 1000)
            results.append(ids)
    return latencies, results


def throughput(queries: list[str], ef_search: int, connections: int, seconds: float) -> float:
    """Queries per second with ``connections`` connections each sending one query after another."""
    from django.db import connections as django_connections

    done = [0] * connections
    stop = time.monotonic() + seconds

    def worker(slot: int) -> None:
        connection = django_connections["default"]
        with connection.cursor() as cursor:
            prepare_session(cursor, ef_search)
            i = slot
            while time.monotonic() < stop:
                cursor.execute(QUERY, [queries[i % len(queries)]])
                cursor.fetchall()
                done[slot] += 1
                i += connections
        connection.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def measure(texts: list[str], truth: np.ndarray, ef_search: int, args: argparse.Namespace) -> dict:
    latencies, results = run_queries(texts, ef_search)
    return {
        "ef_search": ef_search,
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "recall_at_10": round(recall(results, truth), 4),
        "qps_concurrent": round(throughput(texts, ef_search, args.concurrency, args.throughput_seconds), 1),
        "concurrency": args.concurrency,
    }


def arguments() -> argparse.Namespace:
    parser = argument_parser(__doc__, __spec__.name)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=3000)
    parser.add_argument(
        "--spread", type=float, default=0.03, help="per-dimension cluster noise (0.03: cos ~0.7 within a cluster)"
    )
    parser.add_argument(
        "--data",
        default="clusters",
        choices=["clusters", "clip-like"],
        help="clusters: isotropic Gaussian clusters (--clusters, --spread); clip-like: bench/search.py's data "
        "calibrated to CLIP ViT-B/32 image embeddings (a common direction, clusters of very different sizes, "
        "variance decaying like 1/rank), with --clusters clusters",
    )
    parser.add_argument("--storage", default="vector", choices=["vector", "halfvec"])
    parser.add_argument("--ef", default="40,100,200")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--throughput-seconds", type=float, default=20)
    parser.add_argument("--build-workers", type=int, default=2)
    parser.add_argument("--build-memory", default="8GB")
    parser.add_argument("--reuse", action="store_true", help="keep the loaded table if it has --rows rows")
    parser.add_argument("--m", type=int, help="HNSW m for the build (default: the migration's)")
    parser.add_argument("--ef-construction", type=int, help="HNSW ef_construction (default: the migration's)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    setup_django(migrate=True, DEBUG="1", EMBEDDED_DB_NAME=database_name(args), VECTOR_STORAGE=args.storage)
    data, queries = draw(args)
    line = {"storage": args.storage, "data": args.data, "rows": args.rows, "queries": args.queries}
    line["cpu_count"] = os.cpu_count()
    # How hard the data is for an index: the median cosine of a query to its nearest row.
    line["nearest_cosine_p50"] = round(float(np.median(np.max(queries[:200] @ data.T, axis=1))), 3)
    line |= load(args, data) | table_facts()
    truth = ids_by_row()[exact_top_k(data, queries, 10)]
    texts = [vector_text(q) for q in queries]
    for ef_search in [int(x) for x in args.ef.split(",")]:
        print(json.dumps(line | measure(texts, truth, ef_search, args)), flush=True)


if __name__ == "__main__":
    main()
