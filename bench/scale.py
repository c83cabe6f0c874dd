"""Scale benchmark: a million clustered vectors in PostgreSQL + pgvector, loaded, indexed and queried.

Generates N unit vectors from a mixture of Gaussian clusters (so neighbours behave like real
embeddings, not uniform noise), loads them with the project's binary COPY path
(gallery.services.images_copy), builds the HNSW index with parallel maintenance workers, and for
held-out queries measures single-connection p50/p95 latency and recall@10 against exact search
(numpy brute force over the same vectors) at several ef_search values, plus throughput with
concurrent connections. One JSON line per configuration.

    .venv/bin/python bench/scale.py --rows 1000000 --storage vector [--data clip-like] [--ef 100,300,400]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def clustered_vectors(rows: int, dimensions: int, clusters: int, seed: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimensions)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((rows, dimensions), dtype=np.float32)
    step = 100_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        assignment = rng.integers(0, clusters, n)
        block = centres[assignment] + rng.standard_normal((n, dimensions)).astype(np.float32) * spread
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k nearest by cosine (vectors are unit length: the largest dot products)."""
    result = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ data.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        result[start : start + 100] = np.take_along_axis(top, order, axis=1)
    return result


def setup_django(database: str, storage: str) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="1", EMBEDDED_DB_NAME=database)
    os.environ["VECTOR_STORAGE"] = storage
    import django

    django.setup()


def table_sizes() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size('gallery_image') - pg_indexes_size('gallery_image'), "
            "pg_relation_size('gallery_image_embedding_hnsw')"
        )
        table, index = cursor.fetchone()
    return {"table_mb": round(table / 2**20, 1), "index_mb": round(index / 2**20, 1)}


def query_sql() -> str:
    # The bare index query: rows without a vector are not in the index, so no filter is needed here.
    return "SELECT id FROM gallery_image ORDER BY embedding <=> %s LIMIT 10"


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def prepare_session(cursor, ef_search: int) -> None:
    # The planner's HNSW cost grows with ef_search; on small tables it may then prefer an exact scan.
    # Keep it on the index, as the site's queries are.
    cursor.execute("SET hnsw.ef_search = %s", [ef_search])
    cursor.execute("SET enable_seqscan = off")


def run_queries(queries: list[str], ef_search: int) -> tuple[list[float], list[list[int]]]:
    from django.db import connection

    latencies, results = [], []
    with connection.cursor() as cursor:
        prepare_session(cursor, ef_search)
        cursor.execute("EXPLAIN " + query_sql(), [queries[0]])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Index Scan using gallery_image_embedding_hnsw" in plan, plan[:500]
        for text in queries:
            started = time.perf_counter()
            cursor.execute(query_sql(), [text])
            ids = [row[0] for row in cursor.fetchall()]
            latencies.append((time.perf_counter() - started) * 1000)
            results.append(ids)
    return latencies, results


def throughput(queries: list[str], ef_search: int, connections: int, seconds: float) -> float:
    from django.db import connections as django_connections

    done = [0] * connections
    stop = time.monotonic() + seconds

    def worker(slot: int) -> None:
        connection = django_connections["default"]
        with connection.cursor() as cursor:
            prepare_session(cursor, ef_search)
            i = slot
            while time.monotonic() < stop:
                cursor.execute(query_sql(), [queries[i % len(queries)]])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        help="clusters: isotropic Gaussian clusters (--clusters, --spread); clip-like: bench/search.py's generator "
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
    args = parser.parse_args()

    database = f"bench_scale_{args.storage}" + ("_cliplike" if args.data == "clip-like" else "")
    if args.m or args.ef_construction:  # another graph: a table of its own, so the default one is kept
        database += f"_m{args.m or ''}_ef{args.ef_construction or ''}"
    setup_django(database, args.storage)
    from django.core.management import call_command
    from django.db import connection

    from gallery.models import Image
    from gallery.services import images_copy

    call_command("migrate", verbosity=0)
    if args.data == "clip-like":
        from bench.search import clip_like

        # One draw of rows + queries: the queries are fresh points of the same clusters.
        drawn = clip_like(args.rows + args.queries, seed=1, clusters=args.clusters).vectors
        data, queries = drawn[: args.rows], drawn[args.rows :]
        del drawn
    else:
        data = clustered_vectors(args.rows, 512, args.clusters, seed=1, spread=args.spread)
        queries = clustered_vectors(args.rows + args.queries, 512, args.clusters, seed=1, spread=args.spread)[
            args.rows :
        ]
    result = {
        "storage": args.storage,
        "data": args.data,
        "rows": args.rows,
        "queries": args.queries,
        "cpu_count": os.cpu_count(),
    }
    # How hard the data is for an index: the median cosine of a query to its nearest row.
    sample = np.max(queries[:200] @ data.T, axis=1)
    result["nearest_cosine_p50"] = round(float(np.median(sample)), 3)

    if not (args.reuse and Image.objects.count() == args.rows):
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE gallery_image")
            cursor.execute("DROP INDEX IF EXISTS gallery_image_embedding_hnsw")
        started = time.perf_counter()
        step = 50_000
        for start in range(0, args.rows, step):
            block = data[start : start + step]
            shas = [f"{i:064x}" for i in range(start, start + len(block))]
            images_copy(
                sha256s=shas,
                paths=[f"bench/{i}.jpg" for i in range(start, start + len(block))],
                vectors=block,
                encoder_id="bench",
            )
        result["load_s"] = round(time.perf_counter() - started, 1)
        index = copy.copy(next(i for i in Image._meta.indexes if i.name == "gallery_image_embedding_hnsw"))
        index.m = args.m or index.m
        index.ef_construction = args.ef_construction or index.ef_construction
        started = time.perf_counter()
        with connection.schema_editor() as editor:
            editor.execute(f"SET maintenance_work_mem = '{args.build_memory}'")
            editor.execute(f"SET max_parallel_maintenance_workers = {args.build_workers}")
            editor.execute(index.create_sql(Image, editor))
        result["index_build_s"] = round(time.perf_counter() - started, 1)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE gallery_image")
    result.update(table_sizes())
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'")
        result["index"] = cursor.fetchone()[0].split(" USING ")[1]
    # ids were assigned in load order; map them back to rows of `data`
    first_id = Image.objects.order_by("id").values_list("id", flat=True).first()
    truth = exact_top_k(data, queries, 10) + first_id
    texts = [vector_text(q) for q in queries]
    for ef in [int(x) for x in args.ef.split(",")]:
        latencies, results = run_queries(texts, ef)
        recall = np.mean([len(set(r) & set(t.tolist())) / 10 for r, t in zip(results, truth, strict=True)])
        line = dict(result, ef_search=ef)
        line.update(
            p50_ms=round(statistics.median(latencies), 2),
            p95_ms=round(float(np.percentile(latencies, 95)), 2),
            recall_at_10=round(float(recall), 4),
            qps_concurrent=round(throughput(texts, ef, args.concurrency, args.throughput_seconds), 1),
            concurrency=args.concurrency,
        )
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
