"""One search on a plain table vs the same rows distributed by Citus: the app's statements, timed.

Needs a Citus coordinator (docs/scaling.md, "Running the Citus test"); its worker nodes, if any,
must be added in the database named by --url already (or pass --worker HOST:PORT to add one).
Makes two tables in that database, ``bench_plain`` and ``bench_dist`` (dropped first, left for
inspection), with the same random unit vectors as halfvec(512) and an HNSW index each, then times
the search the app sends (search/selectors.py: its settings, then one ORDER BY <=> LIMIT query) on
each. Prints one JSON line.

    .venv/bin/python -m bench.citus_search --url postgres://postgres@localhost:5501/postgres \\
        --rows 20000 --queries 200 --shards 4
"""

import json
import statistics
import time

import numpy as np
import psycopg

from bench.common import argument_parser, setup_django


def _vector(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.5f}" for x in v) + "]"


def main() -> None:
    parser = argument_parser(__doc__, "bench.citus_search")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--depth", type=int, default=10, help="LIMIT (ef_search follows as the app sets it)")
    parser.add_argument("--worker", default="", help="HOST:PORT of a worker to add (optional)")
    args = parser.parse_args()
    setup_django(DEBUG="1", DATABASE_URL=args.url)
    from search.selectors import scan_settings_sql  # the app's statements, as it sends them

    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(args.rows, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(args.rows, size=args.queries, replace=False)]
    with psycopg.connect(args.url, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS citus")
        db.execute("CREATE EXTENSION IF NOT EXISTS vector")
        if args.worker:
            host, port = args.worker.rsplit(":", 1)
            db.execute("SELECT citus_add_node(%s, %s)", [host, int(port)])
        for table in ("bench_plain", "bench_dist"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
            db.execute(f"CREATE TABLE {table} (id bigint, sha256 text, embedding halfvec(512))")
        started = time.perf_counter()
        with db.cursor().copy("COPY bench_plain (id, sha256, embedding) FROM STDIN") as copy:
            for i, v in enumerate(vectors):
                copy.write_row((i, f"{i:064x}", _vector(v)))
        db.execute("INSERT INTO bench_dist SELECT * FROM bench_plain")
        db.execute("SELECT create_distributed_table('bench_dist', 'sha256', shard_count => %s)", [args.shards])
        load_s = time.perf_counter() - started
        index_s = {}
        for table in ("bench_plain", "bench_dist"):
            started = time.perf_counter()
            db.execute(f"CREATE INDEX ON {table} USING hnsw (embedding halfvec_cosine_ops)")
            index_s[table] = round(time.perf_counter() - started, 1)
        nodes = db.execute(
            "SELECT count(DISTINCT nodeid) FROM pg_dist_shard JOIN pg_dist_placement USING (shardid)"
            " JOIN pg_dist_node USING (groupid) WHERE logicalrelid = 'bench_dist'::regclass"
        ).fetchone()[0]

        result = {}
        for table, citus in (("bench_plain", False), ("bench_dist", True)):
            times, recalls = [], []
            for q in queries:
                text = _vector(q)
                started = time.perf_counter()
                with db.transaction():
                    for statement, params in scan_settings_sql(depth=args.depth, exact=False, citus=citus):
                        db.execute(statement, params)
                    ids = [
                        row[0]
                        for row in db.execute(
                            f"SELECT id FROM {table} ORDER BY embedding <=> %s::halfvec LIMIT %s",
                            [text, args.depth],
                        )
                    ]
                times.append((time.perf_counter() - started) * 1000)
                truth = np.argsort(-(vectors @ q))[: args.depth]
                recalls.append(len(set(ids) & set(truth.tolist())) / args.depth)
            times.sort()
            result[table] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
                "recall": round(statistics.fmean(recalls), 3),
            }
    print(
        json.dumps(
            {
                "rows": args.rows,
                "queries": args.queries,
                "shards": args.shards,
                "nodes_with_shards": nodes,
                "limit": args.depth,
                "load_s": round(load_s, 1),
                "index_s": index_s,
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
