"""Metrics benchmark: what a Prometheus scrape of /metrics costs with a large collection.

Loads N rows (random unit vectors, all embedded, then some marked pending and failed) with the one
bulk loader into its own embedded database, VACUUM ANALYZEs as autovacuum would, and times the
parts of a scrape that touch the database: the images-by-state count (gallery/metrics.py:
ImagesByState, one GROUP BY over the state index) and the whole exposition core/metrics.py
writes, and the same count written count(id), which reads every row. Queue depth is not timed here (one pipelined LLEN round trip to Redis). One JSON line.

    .venv/bin/python -m bench.metrics --rows 1000000
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

from bench.common import argument_parser, load_rows, percentile, setup_django


def main() -> None:
    parser = argument_parser(__doc__, "bench.metrics")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the rows of an earlier run with as many")
    args = parser.parse_args()
    setup_django(migrate=True, DEBUG="1", EMBEDDED_DB_NAME="bench_metrics", VECTOR_STORAGE="halfvec")

    from django.db import connection
    from django.db.models import Count
    from prometheus_client import generate_latest

    from core.metrics import AT_SCRAPE
    from gallery.metrics import ImagesByState
    from gallery.models import Image

    facts: dict = {"rows": args.rows}
    if not (args.reuse and Image.objects.count() == args.rows):
        rng = np.random.default_rng(1)
        vectors = rng.standard_normal((args.rows, 512), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        facts["load_s"] = round(load_rows(vectors, path_of=lambda row: f"bench/{row}.jpg"), 1)
        # A few in the other states, as a live collection has (1% pending, 0.1% failed).
        with connection.cursor() as cursor:
            cursor.execute("UPDATE gallery_image SET state = 'pending' WHERE id % 100 = 0")
            cursor.execute("UPDATE gallery_image SET state = 'failed' WHERE id % 1000 = 1")
            cursor.execute("VACUUM ANALYZE gallery_image")

    def timed(run) -> list[float]:
        run()  # warm: the first read brings the index into memory
        times = []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        return times

    by_state = timed(lambda: list(ImagesByState().collect()))
    # The same count as count(id): every heap tuple read (what the collector avoids).
    by_state_count_id = timed(lambda: list(Image.objects.order_by().values_list("state").annotate(n=Count("pk"))))
    exposition = timed(lambda: generate_latest(AT_SCRAPE))
    sql, params = ImagesByState.queryset().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0][0]["Plan"]
    scans = []
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        if "Scan" in node["Node Type"]:
            scans.append(node["Node Type"])
    facts.update(
        images_by_state_ms_p50=round(statistics.median(by_state), 1),
        images_by_state_ms_p95=round(percentile(by_state, 95), 1),
        count_id_instead_ms_p50=round(statistics.median(by_state_count_id), 1),
        at_scrape_exposition_ms_p50=round(statistics.median(exposition), 1),
        plan=scans,
        states=dict(ImagesByState.queryset()),
    )
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
