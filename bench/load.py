"""Load benchmark: text and image searches against gunicorn under concurrent clients, with wrk.

Serves the site as production does (``gunicorn -c config/gunicorn.conf.py``, its default workers
and threads, ``DEBUG`` off) on 127.0.0.1, over the 100,000-row database that bench/search.py
builds (``bench_search``; made here if missing), with the full-size stand-in encoders
(``make_standin_encoders --full-size``: the real architectures, random weights, the real compute).
Then, at the same time and for ``--duration`` seconds:

- ``--connections`` wrk connections send ``GET /api/search?q=...`` with distinct multilingual
  queries (more distinct queries than the per-process query cache holds, so every request runs
  the text encoder);
- ``--image-connections`` wrk connections send ``POST /api/search/image`` with one of a few
  generated JPEGs (0 turns it off);
- with ``--ingest N``, ``manage.py embed_images`` embeds N generated photo-like JPEGs into the same
  database.

With ``--replica`` the searches read from a real streaming replica of the database
(config/embedded_postgres/replica.py: ``pg_basebackup -R`` with the embedded server's binaries,
started beside the primary on this machine; DATABASE_REPLICA_URLS points at it). The line then
says how many transactions each server committed during the run (``pg_stat_database``), which
shows where the searches went.

wrk measures each request's latency from send to answer (its own coordinated-omission-free
percentiles); errors are connection errors, timeouts (``--timeout``) and every status other than
2xx. Image-search limits (IMAGE_SEARCH_RATE, IMAGE_SEARCH_CONCURRENCY) are turned off for the run:
every request comes from 127.0.0.1, one client to the site. Prints one JSON line.

    apt-get install wrk            # once (Debian's wrk 4.1)
    .venv/bin/python -m bench.load --duration 60 --connections 4 [--pool] [--image-connections 1] [--ingest 60] [--replica]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from bench.common import BENCH_ENCODER, FULL_SIZE_ENCODERS, ROOT, Client, Server, argument_parser, gunicorn
from bench.data import generate_photos, queries, query_image_bodies
from bench.search import collection, setup_site

# Runs in every wrk thread: rotate through the request list, each thread from its own place.
WRK_SCRIPT = """
local requests = {}
local counter = 0
local thread_index = 0

function setup(thread)
  thread:set("offset", thread_index * 7919)
  thread_index = thread_index + 1
end

function init(args)
  local file = io.open(args[1], "rb")
  local body = file:read("*a")
  file:close()
  for line in body:gmatch("[^\\n]+") do
    local method, path, content_type, payload_file = line:match("^(%S+) (%S+) ?(%S*) ?(%S*)$")
    local headers, payload = {}, nil
    if payload_file ~= "" then
      local f = io.open(payload_file, "rb")
      payload = f:read("*a")
      f:close()
      headers["Content-Type"] = content_type
    end
    table.insert(requests, wrk.format(method, path, headers, payload))
  end
  counter = offset or 0
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f, '
    .. '"mean_ms": %.2f, "errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, '
    .. '"errors_timeout": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout))
end
"""


def warm_every_worker(server: Server, workers: int, *, image_lines: list[str], workdir: Path) -> None:
    """Load the text encoder (and the image encoder, given image requests) in every worker before the clock starts."""
    # Connections are spread over the workers by the kernel; enough fresh ones reach each of them.
    for i in range(workers * 8):
        fresh = Client(server.port)
        fresh.get("/api/search?" + urllib.parse.urlencode({"q": f"warm up {i}"}))
        fresh.connection.close()
    if image_lines:
        warm = wrk(
            port=server.port,
            lines=image_lines,
            connections=workers * 2,
            duration=5,
            timeout=60,
            workdir=workdir,
            name="warm",
        )
        wrk_result(warm)


def wrk(
    *, port: int, lines: list[str], connections: int, duration: int, timeout: int, workdir: Path, name: str
) -> subprocess.Popen:
    script = workdir / "rotate.lua"
    script.write_text(WRK_SCRIPT)
    listing = workdir / f"{name}.txt"
    listing.write_text("\n".join(lines) + "\n")
    command = [
        "wrk",
        f"--threads={min(connections, 2)}",
        f"--connections={connections}",
        f"--duration={duration}s",
        f"--timeout={timeout}s",
        f"--script={script}",
        f"http://127.0.0.1:{port}",
        "--",
        str(listing),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_result(process: subprocess.Popen) -> dict:
    out, err = process.communicate()
    if process.returncode != 0:
        sys.exit(f"wrk failed ({process.returncode}): {err or out}")
    line = next(line for line in out.splitlines() if line.startswith("{"))
    result = json.loads(line)
    result["errors"] = sum(value for key, value in result.items() if key.startswith("errors_"))
    result["rps"] = round(result["requests"] / result["duration_s"], 2)
    return result


@dataclass
class Requests:
    """What wrk sends (one request a line) and the photos embed_images takes in, if any."""

    text: list[str]
    image: list[str]
    photos: Path | None


def make_requests(args: argparse.Namespace, workdir: Path) -> Requests:
    texts = queries(3000)  # more than the per-process query cache (256): every request is encoded
    photos = None
    if args.ingest:
        # bench/ingest.py's photo-like 4000x3000 JPEGs, kept between runs (made once, about 0.3 s each).
        photos = ROOT / "var" / "bench" / f"load-photos-{args.ingest}"
        generate_photos(photos, args.ingest, 4000, 3000)
    return Requests(
        text=["GET /api/search?" + urllib.parse.urlencode({"q": text}) for text in texts],
        image=[
            f"POST /api/search/image multipart/form-data;boundary=BENCHBOUNDARY {path}"
            for path in query_image_bodies(workdir, 8)
        ],
        photos=photos,
    )


def prepare_collection(args: argparse.Namespace) -> None:
    """bench/search.py's rows, less those an earlier run's --ingest added: every run searches the same ones."""
    from django.db import connection

    collection(rows=args.rows, seed=args.seed, ef_construction=args.ef_construction)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM gallery_image WHERE encoder <> %s", [BENCH_ENCODER])
    connection.close()


def start_ingest(photos: Path, log: Path) -> subprocess.Popen:
    """``manage.py embed_images`` into the same database; its output to a file (a pipe nobody reads would fill up)."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "embed_images", str(photos)],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_for(load: subprocess.Popen, ingest: subprocess.Popen | None) -> float | None:
    """Until the load ends; returns when the ingestion ended (time.monotonic()), if it ended by then."""
    ended = None
    while True:
        running = load.poll() is None
        if ingest is not None and ended is None and ingest.poll() is not None:
            ended = time.monotonic()
        if not running:
            return ended
        time.sleep(0.5)


def ingest_result(ingest: subprocess.Popen, log: Path, *, files: int, ended_after_s: float | None) -> dict:
    ingest.wait()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return {
        "exit_status": ingest.returncode,
        "files": files,
        # When it ended, from the start of the load (its own summary has its own clock).
        "ended_after_s": round(ended_after_s, 1) if ended_after_s is not None else None,
        "summary": lines[-1] if lines else "",
    }


def run(args: argparse.Namespace, server: Server, workers: int, requests: Requests, workdir: Path) -> dict:
    """The searches with wrk, embed_images beside them if asked; what each measured."""
    warm_every_worker(server, workers, image_lines=requests.image if args.image_connections else [], workdir=workdir)
    start_wrk = functools.partial(wrk, port=server.port, duration=args.duration, timeout=args.timeout, workdir=workdir)
    started = time.monotonic()
    ingest = start_ingest(requests.photos, workdir / "ingest.log") if requests.photos else None
    try:
        text_run = start_wrk(lines=requests.text, connections=args.connections, name="text")
        image_run = None
        if args.image_connections:
            image_run = start_wrk(lines=requests.image, connections=args.image_connections, name="image")
        ingest_ended = wait_for(text_run, ingest)
        results = {"text": wrk_result(text_run), "image": wrk_result(image_run) if image_run else None}
        results["ingest"] = None
        if ingest is not None:
            ended_after_s = ingest_ended - started if ingest_ended else None
            results["ingest"] = ingest_result(
                ingest, workdir / "ingest.log", files=args.ingest, ended_after_s=ended_after_s
            )
    finally:
        if ingest is not None and ingest.poll() is None:
            ingest.kill()
    return results


def transactions(params: dict, dbname: str) -> int:
    """Transactions committed in ``dbname`` on the server of ``params`` (its pg_stat_database)."""
    import psycopg

    with psycopg.connect(**params, dbname=dbname, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_force_next_flush()")
        (count,) = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [dbname]
        ).fetchone()
    return count


@contextlib.contextmanager
def streaming_replica(dbname: str):
    """A streaming replica of the (embedded) bench database; gunicorn's searches read it (DATABASE_REPLICA_URLS)."""
    from django.db import connection

    from config.embedded_postgres.replica import StreamingReplica

    if os.environ.get("DATABASE_URL"):
        sys.exit("--replica copies the embedded server; unset DATABASE_URL")
    params = connection.get_connection_params()
    primary = {key: params[key] for key in ("host", "port", "user")}
    connection.close()
    replica = StreamingReplica.create(primary=primary)
    try:
        replica.wait_for_primary(timeout=300)
        os.environ["DATABASE_REPLICA_URLS"] = replica.url(dbname)
        yield primary, replica
    finally:
        os.environ.pop("DATABASE_REPLICA_URLS", None)
        replica.remove()


def environment(args: argparse.Namespace) -> dict[str, str]:
    """This run's settings; gunicorn and embed_images inherit them."""
    environment = {
        "DATABASE_POOL": "1" if args.pool else "0",
        # One client (127.0.0.1) sends everything: the per-client rate and the per-process cap on image
        # encodes at once (search/throttle.py) would answer most of it with 429.
        "IMAGE_SEARCH_RATE": "0",
        "IMAGE_SEARCH_CONCURRENCY": "0",
    }
    if args.backend:
        environment["EMBEDDING_BACKEND"] = args.backend
    if args.workers:
        environment["GUNICORN_WORKERS"] = str(args.workers)
    if args.threads:
        environment["GUNICORN_THREADS"] = str(args.threads)
    return environment


def arguments() -> argparse.Namespace:
    parser = argument_parser(__doc__, __spec__.name)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--connections", type=int, default=4, help="concurrent text-search connections")
    parser.add_argument("--image-connections", type=int, default=0, help="concurrent image-search connections")
    parser.add_argument("--ingest", type=int, default=0, help="embed this many generated photos during the load")
    parser.add_argument("--pool", action="store_true", help="DATABASE_POOL=1 (a psycopg pool per worker)")
    parser.add_argument("--replica", action="store_true", help="searches read a streaming replica of the database")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: config/gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: config/gunicorn.conf.py's)")
    parser.add_argument("--timeout", type=int, default=10, help="wrk's per-request timeout, seconds")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="bench_search", help="embedded database name (without DATABASE_URL)")
    parser.add_argument("--models", type=Path, default=FULL_SIZE_ENCODERS, help="the full-size stand-in encoders")
    parser.add_argument("--backend", help="EMBEDDING_BACKEND (default: the environment's, else torch)")
    parser.add_argument("--ef-construction", type=int, help="HNSW ef_construction (default: the migrations')")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    setup_site(models=args.models, db=args.db, **environment(args))
    from django.conf import settings

    prepare_collection(args)
    # config/gunicorn.conf.py's numbers, unless this run set them.
    workers = int(os.environ.get("GUNICORN_WORKERS") or max(1, min(os.cpu_count() or 1, 4)))
    threads = int(os.environ.get("GUNICORN_THREADS") or 4)
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    dbname = settings.DATABASES["default"]["NAME"]
    try:
        requests = make_requests(args, workdir)
        with contextlib.ExitStack() as stack:
            servers = stack.enter_context(streaming_replica(dbname)) if args.replica else None
            with gunicorn(workers=None) as server:
                if servers:  # from here on: the warm-up and the load
                    before = [transactions(params, dbname) for params in (servers[0], servers[1].server)]
                line = run(args, server, workers, requests, workdir) | {"server_survived": server.alive}
            if servers:  # gunicorn's connections are closed: their counts are in
                after = [transactions(params, dbname) for params in (servers[0], servers[1].server)]
                line["transactions"] = {"primary": after[0] - before[0], "replica": after[1] - before[1]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    line |= {
        "replica": args.replica,
        "pool": args.pool,
        "workers": workers,
        "threads": threads,
        "connections": args.connections,
    }
    line |= {"image_connections": args.image_connections, "duration_s": args.duration, "rows": args.rows}
    line |= {"backend": settings.EMBEDDING_BACKEND, "ef_search": settings.HNSW_EF_SEARCH, "cpu_count": os.cpu_count()}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
