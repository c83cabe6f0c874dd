"""Search benchmark: text search through the HTTP API on 100,000 rows, and the HNSW index's recall.

1. Loads ``--rows`` generated 512-d vectors into a database of their own (the embedded PostgreSQL,
   database ``bench_search``; or DATABASE_URL), with COPY in pgvector's binary format, and builds
   the HNSW index once over them (kept between runs: a second run reuses the table). The vectors
   are clustered like real CLIP image embeddings rather than uniform noise: they share a common
   direction (every CLIP image vector leans the same way), fall in clusters of very different
   sizes and spreads, and come out at about 0.85 cosine to their cluster's centre, 0.7 within a
   cluster and 0.35 across clusters.
2. Serves the site with gunicorn (``config/gunicorn.conf.py``, one worker) on 127.0.0.1 with the
   full-size stand-in text model (``make_standin_encoders --full-size``: the real architecture with
   random weights, so encoding costs what the real model costs), and sends ``--queries`` distinct
   multilingual text queries to ``GET /api/search`` over one keep-alive HTTP connection.
3. Latency is measured by the client, per request; the server's Server-Timing header splits it
   into ``encode`` (the text model) and ``db`` (the transaction: settings, the HNSW query, the
   rows); ``other`` is the rest (HTTP, Django, JSON), per request. Percentiles are over requests.
4. recall@10: the API's first 10 results against the exact 10 nearest (numpy brute force over
   the same vectors, with the same query vectors, encoded again here), at the configured
   ``HNSW_EF_SEARCH``. Also for "data-like" queries (fresh points of the same clusters), through
   the same selector.

Prints one JSON line.

    .venv/bin/python bench/search.py [--rows 100000] [--queries 300] [--ef-search 300] [--backend onnx]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DIMENSIONS = 512
GENERATOR = "clip-like-v2"
MEAN_COSINE = 0.69  # of an image vector to the common direction: random pairs come out near 0.48

SUBJECTS = [
    "a red bicycle",
    "ein roter Hund",
    "un chat noir",
    "una playa al atardecer",
    "雪山",
    "海滩上的狗",
    "赤い車",
    "قطة نائمة",
    "горы зимой",
    "γάτα στον καναπέ",
    "बिल्ली",
    "고양이",
    "children playing football",
    "eine Katze auf dem Sofa",
    "un pont sous la pluie",
]
PLACES = [
    "by the sea",
    "in the snow",
    "am Strand",
    "dans la rue",
    "en el bosque",
    "在城市里",
    "夜の街で",
    "في الصحراء",
    "на рынке",
    "at night",
    "under a blue sky",
    "im Nebel",
    "à la montagne",
    "",
    "in the kitchen",
    "with friends",
    "2019",
    "close-up",
]


def queries(count: int) -> list[str]:
    """``count`` distinct queries in many languages and scripts."""
    texts = []
    for i in range(count):
        subject = SUBJECTS[i % len(SUBJECTS)]
        place = PLACES[(i // len(SUBJECTS)) % len(PLACES)]
        round_ = i // (len(SUBJECTS) * len(PLACES))
        texts.append(" ".join(part for part in (subject, place, f"#{round_}" if round_ else "") if part))
    assert len(set(texts)) == count
    return texts


@dataclass
class Embeddings:
    """Unit vectors shaped like CLIP ViT-B/32 image embeddings, and how they were made."""

    vectors: np.ndarray  # (rows, 512) float32
    labels: np.ndarray  # the cluster of each row
    common: np.ndarray  # the direction every image vector leans towards
    topics: np.ndarray  # each cluster's direction within the residual space (unit)
    residual: np.ndarray  # (512, 511) basis of the space orthogonal to ``common``
    scale: np.ndarray  # the standard deviation along each residual axis (unit total variance)


def clip_like(rows: int, *, seed: int, clusters: int = 500) -> Embeddings:
    """Image-like vectors: a common direction, then clusters in a space whose variance decays like 1/rank.

    Measured on the result (20,000 rows): random pairs 0.48 cosine, pairs in one cluster 0.80,
    nearest neighbours 0.88, about 33 effective dimensions (participation ratio), as CLIP image
    embeddings have: most of the 512 dimensions carry little variance.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((DIMENSIONS, DIMENSIONS)))
    common, residual = basis[:, 0], basis[:, 1:]
    scale = np.sqrt(1.0 / np.arange(1, DIMENSIONS))
    scale /= np.linalg.norm(scale)
    centres = (rng.standard_normal((clusters, DIMENSIONS - 1)) * scale) @ residual.T
    sizes = rng.lognormal(0, 1.0, clusters)  # a few big topics, many small ones
    labels = rng.choice(clusters, size=rows, p=sizes / sizes.sum())
    spread = rng.uniform(0.5, 1.0, clusters)[labels, None]
    parts = centres[labels]
    for start in range(0, rows, 20_000):  # in slices, to keep memory small
        end = min(rows, start + 20_000)
        noise = (rng.standard_normal((end - start, DIMENSIONS - 1)) * scale) @ residual.T
        parts[start:end] += spread[start:end] * noise
    parts /= np.linalg.norm(parts, axis=1, keepdims=True)
    vectors = MEAN_COSINE * common + np.sqrt(1 - MEAN_COSINE**2) * parts
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    topics = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    return Embeddings(vectors.astype(np.float32), labels, common, topics, residual, scale)


def text_like(embeddings: Embeddings, count: int, *, seed: int) -> np.ndarray:
    """Queries shaped like CLIP text vectors against its image vectors.

    Mostly a direction of their own (CLIP's "modality gap": text and image vectors sit in two
    narrow cones), a little of the images' common direction, and a meaning: a topic's direction
    moved by noise of the same spectrum as the images'. Calibrated to CLIP ViT-B/32's figures:
    about 0.15 cosine to an unrelated image and 0.35 to the best match of 100,000.
    """
    rng = np.random.default_rng(seed)
    text = rng.standard_normal(DIMENSIONS)
    text -= (text @ embeddings.common) * embeddings.common
    text /= np.linalg.norm(text)
    topics = embeddings.topics[rng.choice(embeddings.labels, size=count)]
    noise = (rng.standard_normal((count, DIMENSIONS - 1)) * embeddings.scale) @ embeddings.residual.T
    meaning = topics + 0.5 * noise
    meaning /= np.linalg.norm(meaning, axis=1, keepdims=True)
    queries = 0.94 * text + 0.22 * embeddings.common + 0.27 * meaning
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def setup_django(args) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        ENV_FILE="/dev/null",
        SECRET_KEY="bench-only-not-secret",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="ERROR",
        CLIP_IMAGE_MODEL=str(args.models / "clip"),
        CLIP_TEXT_MODEL=str(args.models / "text"),
        MEDIA_ROOT=tempfile.mkdtemp(prefix="bench-search-media-"),
    )
    if not os.environ.get("DATABASE_URL"):
        os.environ["EMBEDDED_DB_NAME"] = args.db
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load(vectors: np.ndarray, labels: np.ndarray, *, seed: int) -> float:
    """COPY the rows in (binary), then build the HNSW index once; skipped when the table already holds them."""
    import psycopg
    from django.db import connection
    from pgvector.psycopg import register_vector

    marker = f"bench {GENERATOR} rows={len(vectors)} seed={seed}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('gallery_image'::regclass, 'pg_class')")
        (comment,) = cursor.fetchone()
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'")
        index = cursor.fetchone()
    if comment == marker and index:
        return 0.0
    started = time.perf_counter()
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        register_vector(conn)
        if index is None:  # a run killed during the build: take the definition from the migration's model
            from gallery.models import Image

            hnsw = next(i for i in Image._meta.indexes if i.name == "gallery_image_embedding_hnsw")
            with connection.schema_editor(collect_sql=True) as editor:
                indexdef = str(hnsw.create_sql(Image, editor))
        else:
            (indexdef,) = index
        conn.execute("DROP INDEX IF EXISTS gallery_image_embedding_hnsw")
        conn.execute("TRUNCATE gallery_image")
        now = time.time()
        columns = (
            "id, sha256, file, thumbnail, path, width, height, format, byte_size, taken_at, "
            "embedding, encoder, state, error, created_at, updated_at"
        )
        types = ["int8", "varchar", "varchar", "varchar", "varchar", "int4", "int4", "varchar", "int8"]
        # The column's own type (float32 vector or float16 halfvec, VECTOR_STORAGE at migrate time).
        from pgvector import HalfVector

        from gallery.fields import vector_type_in_database
        from gallery.models import Image

        storage = vector_type_in_database(connection, Image)
        as_value = HalfVector if storage == "halfvec" else (lambda vector: vector)
        types += ["timestamptz", storage, "varchar", "varchar", "text", "timestamptz", "timestamptz"]
        import datetime as dt

        stamp = dt.datetime.fromtimestamp(now, dt.UTC)
        fixed = ["bench", "embedded", "", stamp, stamp]
        with conn.cursor() as cursor, cursor.copy(f"COPY gallery_image ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for i, (vector, label) in enumerate(zip(vectors, labels, strict=True)):
                taken = stamp - dt.timedelta(hours=i)
                names = [f"{i:064x}", f"bench/{i}.jpg", f"bench/t{i}.jpg", f"topic{label % 50}/{i:06d}.jpg"]
                copy.write_row([i + 1, *names, 4000, 3000, "JPEG", 2_400_000, taken, as_value(vector), *fixed])
        conn.execute("SELECT setval(pg_get_serial_sequence('gallery_image', 'id'), %s)", [len(vectors)])
        # The whole graph in memory makes the build fast; one parallel worker beside the leader.
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        conn.execute(indexdef)
        conn.execute("ANALYZE gallery_image")
        conn.execute(f"COMMENT ON TABLE gallery_image IS '{marker}'")
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, *, workers: int | None = 1) -> subprocess.Popen:
    """gunicorn with config/gunicorn.conf.py on 127.0.0.1:port (``workers=None``: the config's number)."""
    command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", str(ROOT / "config" / "gunicorn.conf.py")]
    command += ["--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null"]
    if workers:
        command += ["--workers", str(workers)]
    return subprocess.Popen([*command, "config.wsgi"], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL)


class Client:
    """One keep-alive HTTP connection, as a browser or an API client would hold."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> tuple[int, dict, float, dict[str, float]]:
        started = time.perf_counter()
        self.connection.request("GET", path, headers={"Host": "127.0.0.1"})
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        timings = {}
        for part in (response.getheader("Server-Timing") or "").split(","):
            name, _, duration = part.strip().partition(";dur=")
            if duration:
                timings[name] = float(duration)
        return response.status, json.loads(body), elapsed, timings


def wait_ready(client: Client, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with {server.returncode}")
        try:
            status, body, _, _ = client.get("/api/search?q=warm+up")
            if status == 200:
                return
            sys.exit(f"warm-up answered {status}: {body}")
        except (ConnectionError, OSError, http.client.HTTPException):
            client.connection.close()
            time.sleep(0.5)
    sys.exit("gunicorn did not answer within 300 s")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = vectors @ (query / np.linalg.norm(query))
    top = np.argpartition(-scores, k)[:k]
    return [int(i) + 1 for i in top[np.argsort(-scores[top])]]  # ids are row + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--limit", type=int, default=20, help="results per request (the API's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="bench_search", help="embedded database name (without DATABASE_URL)")
    parser.add_argument("--models", type=Path, default=ROOT / "var" / "models-full")
    parser.add_argument("--ef-search", type=int, help="HNSW_EF_SEARCH for this run (default: the setting's)")
    parser.add_argument("--backend", help="EMBEDDING_BACKEND for the server (default: the environment's, else torch)")
    args = parser.parse_args()
    if args.ef_search:
        os.environ["HNSW_EF_SEARCH"] = str(args.ef_search)
    if args.backend:
        os.environ["EMBEDDING_BACKEND"] = args.backend  # the settings read it; gunicorn inherits it

    if not (args.models / "text" / "modules.json").exists():
        sys.exit(
            f"No full-size stand-ins in {args.models}: .venv/bin/python manage.py make_standin_encoders "
            f"--full-size {args.models}"
        )
    setup_django(args)
    from django.conf import settings
    from django.db import connection

    t0 = time.perf_counter()
    collection = clip_like(args.rows, seed=args.seed)
    vectors = collection.vectors
    generate_s = time.perf_counter() - t0
    load_s = load(vectors, collection.labels, seed=args.seed)
    connection.close()

    texts = queries(args.warmup + args.queries)
    port = free_port()
    server = start_server(port)
    try:
        client = Client(port)
        wait_ready(client, server)
        for text in texts[: args.warmup]:
            client.get("/api/search?" + urllib.parse.urlencode({"q": text, "limit": args.limit}))
        totals, encodes, dbs, others, answers = [], [], [], [], []
        for text in texts[args.warmup :]:
            status, body, elapsed, timing = client.get(
                "/api/search?" + urllib.parse.urlencode({"q": text, "limit": args.limit})
            )
            assert status == 200 and len(body["results"]) == args.limit, (status, body)
            totals.append(elapsed)
            encodes.append(timing["encode"])
            dbs.append(timing["db"])
            others.append(elapsed - timing["encode"] - timing["db"])
            answers.append([result["id"] for result in body["results"][:10]])
    finally:
        server.terminate()
        server.wait(timeout=30)

    from search import embeddings, selectors

    def recall(answers: list[list[int]], query_vectors) -> float:
        return statistics.mean(
            len(set(answer) & set(exact_top(vectors, q, 10))) / 10
            for answer, q in zip(answers, query_vectors, strict=True)
        )

    def hnsw_top10(query_vectors) -> list[list[int]]:
        # The selector the API calls once the query is a vector: the same SQL, settings and ef_search.
        return [[image.pk for image in selectors.image_search_by_vector(q, limit=10)] for q in query_vectors]

    # 1. What the API answered for the stand-in's text vectors (encoded again here: the same model).
    standin = embeddings.encode_texts(texts[args.warmup :])
    recall_standin = recall(answers, standin)
    # 2. CLIP-like text queries: the modality gap, a topic.
    text_queries = text_like(collection, args.queries, seed=args.seed + 1)
    recall_text = recall(hnsw_top10(text_queries), text_queries)
    # 3. Image-like queries (search by image, the similar walk): fresh points of the same clusters,
    #    the generator's draws past the rows it loaded.
    fresh = clip_like(args.rows + 200, seed=args.seed).vectors[args.rows :]
    recall_image = recall(hnsw_top10(fresh), fresh)

    def nearest_cosine(query_vectors) -> float:
        return round(float(np.median([np.max(vectors @ q) for q in query_vectors])), 3)

    print(
        json.dumps(
            {
                "p50_ms": round(percentile(totals, 50), 2),
                "p95_ms": round(percentile(totals, 95), 2),
                "encode_p50_ms": round(percentile(encodes, 50), 2),
                "db_p50_ms": round(percentile(dbs, 50), 2),
                "other_p50_ms": round(percentile(others, 50), 2),
                "db_p95_ms": round(percentile(dbs, 95), 2),
                "other_p95_ms": round(percentile(others, 95), 2),
                # recall@10 against exact search: CLIP-like text queries (the headline), image queries,
                # and the stand-in model's own text vectors as the API answered them (random weights).
                "recall_at_10": round(recall_text, 4),
                "recall_at_10_image_queries": round(recall_image, 4),
                "recall_at_10_standin_text": round(recall_standin, 4),
                # Where the queries fall: median cosine to their nearest row (and, for text, to any row).
                "cosine_to_nearest_p50": {
                    "text_like": nearest_cosine(text_queries),
                    "image_queries": nearest_cosine(fresh),
                    "standin_text": nearest_cosine(standin),
                },
                "cosine_text_like_to_any_p50": round(float(np.median(vectors[:2000] @ text_queries.T)), 3),
                "rows": args.rows,
                "queries": args.queries,
                "limit": args.limit,
                "ef_search": settings.HNSW_EF_SEARCH,
                "backend": settings.EMBEDDING_BACKEND,
                "cpu_count": os.cpu_count(),
                "server": "gunicorn config/gunicorn.conf.py, 1 worker (gthread), keep-alive HTTP on 127.0.0.1",
                "generate_s": round(generate_s, 1),
                "load_s": round(load_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
