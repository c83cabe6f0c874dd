"""Load benchmark: text and image searches against gunicorn under concurrent clients, with wrk.

Serves the site as production does (``gunicorn -c config/gunicorn.conf.py``, its default workers
and threads, ``DEBUG`` off) on 127.0.0.1, over the 100,000-row database that bench/search.py
builds (``bench_search``; made here if missing), with the full-size stand-in models
(``make_standin_encoders --full-size``: the real architectures, random weights, the real compute).
Then, at the same time and for ``--duration`` seconds:

- ``--connections`` wrk connections send ``GET /api/search?q=...`` with distinct multilingual
  queries (more distinct queries than the per-process query cache holds, so every request runs
  the text model);
- ``--image-connections`` wrk connections send ``POST /api/search/image`` with one of a few
  generated JPEGs (0 turns it off);
- with ``--ingest N``, ``manage.py embed_images`` embeds N generated photo-like JPEGs into the same
  database.

wrk measures each request's latency from send to answer (its own coordinated-omission-free
percentiles); errors are connection errors, timeouts (``--timeout``) and every status other than
2xx. Image-search limits (IMAGE_SEARCH_RATE, IMAGE_SEARCH_CONCURRENCY) are turned off for the run:
every request comes from 127.0.0.1, one client to the site. Prints one JSON line.

    apt-get install wrk            # once (Debian's wrk 4.1)
    .venv/bin/python bench/load.py --duration 60 --connections 4 [--pool] [--image-connections 1] [--ingest 60]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.search import (  # noqa: E402
    Client,
    clip_like,
    free_port,
    load,
    queries,
    setup_django,
    start_server,
    wait_ready,
)

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


def query_image_bodies(folder: Path, count: int) -> list[Path]:
    """Multipart bodies, each with one generated JPEG (a varied picture, 640x480) in the field ``image``."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        array = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        picture = Image.fromarray(array, "RGB").resize((64, 48)).resize((640, 480))
        draw = ImageDraw.Draw(picture)
        for _ in range(6):
            x, y = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            draw.ellipse(
                (x, y, x + int(rng.integers(20, 160)), y + int(rng.integers(20, 160))),
                fill=tuple(rng.integers(0, 255, 3).tolist()),
            )
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=85)
        body = (
            b"--BENCHBOUNDARY\r\n"
            b'Content-Disposition: form-data; name="image"; filename="query.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + buffer.getvalue() + b"\r\n--BENCHBOUNDARY--\r\n"
        )
        path = folder / f"body{i}.bin"
        path.write_bytes(body)
        paths.append(path)
    return paths


def warm_every_worker(port: int, server: subprocess.Popen, workers: int) -> None:
    """Load the text and image models in every worker before the clock starts."""
    client = Client(port)
    wait_ready(client, server)
    # Connections are spread over the workers by the kernel; enough fresh ones reach each of them.
    for i in range(workers * 8):
        fresh = Client(port)
        fresh.get("/api/search?" + urllib.parse.urlencode({"q": f"warm up {i}"}))
        fresh.connection.close()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--connections", type=int, default=4, help="concurrent text-search connections")
    parser.add_argument("--image-connections", type=int, default=0, help="concurrent image-search connections")
    parser.add_argument("--ingest", type=int, default=0, help="embed this many generated photos during the load")
    parser.add_argument("--pool", action="store_true", help="DATABASE_POOL=1 (a psycopg pool per worker)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: config/gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: config/gunicorn.conf.py's)")
    parser.add_argument("--timeout", type=int, default=10, help="wrk's per-request timeout, seconds")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="bench_search", help="embedded database name (without DATABASE_URL)")
    parser.add_argument("--models", type=Path, default=ROOT / "var" / "models-full")
    parser.add_argument("--backend", help="EMBEDDING_BACKEND (default: the environment's, else torch)")
    args = parser.parse_args()

    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    if not (args.models / "text" / "modules.json").exists():
        sys.exit(
            f"No full-size stand-ins in {args.models}: .venv/bin/python manage.py make_standin_encoders --full-size {args.models}"
        )
    if args.backend:
        os.environ["EMBEDDING_BACKEND"] = args.backend
    os.environ["DATABASE_POOL"] = "1" if args.pool else "0"
    # One client (127.0.0.1) sends everything: the per-client rate and the per-process cap on image
    # encodes at once (search/throttle.py) would answer most of it with 429.
    os.environ["IMAGE_SEARCH_RATE"] = "0"
    os.environ["IMAGE_SEARCH_CONCURRENCY"] = "0"
    if args.workers:
        os.environ["GUNICORN_WORKERS"] = str(args.workers)
    if args.threads:
        os.environ["GUNICORN_THREADS"] = str(args.threads)
    setup_django(args)
    from django.conf import settings
    from django.db import connection

    collection = clip_like(args.rows, seed=args.seed)
    load(collection.vectors, collection.labels, seed=args.seed)
    with connection.cursor() as cursor:
        # Rows a previous run's --ingest added go, so every run searches the same 100,000.
        cursor.execute("DELETE FROM gallery_image WHERE id > %s", [args.rows])
    connection.close()
    del collection

    workers = int(os.environ.get("GUNICORN_WORKERS") or max(1, min(os.cpu_count() or 1, 4)))
    threads = int(os.environ.get("GUNICORN_THREADS") or 4)
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        texts = queries(3000)  # more than the per-process query cache (256): every request is encoded
        text_lines = ["GET /api/search?" + urllib.parse.urlencode({"q": text}) for text in texts]
        image_lines = [
            f"POST /api/search/image multipart/form-data;boundary=BENCHBOUNDARY {path}"
            for path in query_image_bodies(workdir, 8)
        ]
        photos = None
        if args.ingest:
            from bench.ingest import generate

            # bench/ingest.py's photo-like 4000x3000 JPEGs, kept between runs (made once, about 0.3 s each).
            photos = ROOT / "var" / "bench" / f"load-photos-{args.ingest}"
            generate(photos, args.ingest, 4000, 3000)

        port = free_port()
        server = start_server(port, workers=None)
        ingest = None
        try:
            warm_every_worker(port, server, workers)
            if args.image_connections:
                warm = wrk(
                    port=port,
                    lines=image_lines,
                    connections=workers * 2,
                    duration=5,
                    timeout=60,
                    workdir=workdir,
                    name="warm",
                )
                wrk_result(warm)
            started = time.monotonic()
            if photos is not None:
                ingest = subprocess.Popen(
                    [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "embed_images", str(photos)],
                    cwd=ROOT,
                    env=os.environ.copy(),
                    stdout=(workdir / "ingest.log").open("w"),  # a file: a pipe nobody reads would fill up
                    stderr=subprocess.STDOUT,
                )
            start_wrk = functools.partial(wrk, port=port, duration=args.duration, timeout=args.timeout, workdir=workdir)
            text_run = start_wrk(lines=text_lines, connections=args.connections, name="text")
            image_run = None
            if args.image_connections:
                image_run = start_wrk(lines=image_lines, connections=args.image_connections, name="image")
            ingest_ended = None
            while text_run.poll() is None:  # note when the ingestion ends, if it ends before the load
                if ingest is not None and ingest_ended is None and ingest.poll() is not None:
                    ingest_ended = time.monotonic()
                time.sleep(0.5)
            if ingest is not None and ingest_ended is None and ingest.poll() is not None:
                ingest_ended = time.monotonic()
            text_result = wrk_result(text_run)
            image_result = wrk_result(image_run) if image_run else None
            ingest_result = None
            if ingest is not None:
                ingest.wait()
                output = (workdir / "ingest.log").read_text()
                summary = [line for line in output.splitlines() if line.strip()][-1:]
                ingest_result = {
                    "exit_status": ingest.returncode,
                    "files": args.ingest,
                    # When it ended, from the start of the load (its own summary has its own clock).
                    "ended_after_s": round(ingest_ended - started, 1) if ingest_ended else None,
                    "summary": summary[0] if summary else "",
                }
            alive = server.poll() is None
        finally:
            if ingest is not None and ingest.poll() is None:
                ingest.kill()
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    line = {
        "text": text_result,
        "image": image_result,
        "ingest": ingest_result,
        "server_survived": alive,
        "pool": args.pool,
        "workers": workers,
        "threads": threads,
        "connections": args.connections,
        "image_connections": args.image_connections,
        "duration_s": args.duration,
        "rows": args.rows,
        "backend": settings.EMBEDDING_BACKEND,
        "ef_search": settings.HNSW_EF_SEARCH,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
