"""The harness every benchmark shares: Django set-up, the full-size encoders, gunicorn and a client,
loading a collection with the one bulk loader, exact search, recall and percentiles.

Django is set up from the environment alone (``ENV_FILE=/dev/null``: a developer's .env never
changes a figure), so a figure depends on nothing but the command written beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# `manage.py make_standin_encoders --full-size var/models-full`: the real architectures, random weights.
FULL_SIZE_ENCODERS = ROOT / "var" / "models-full"
INDEX_NAME = "gallery_image_embedding_hnsw"
# Every loaded row is marked with this encoder, so rows embed_images adds later can be told apart.
BENCH_ENCODER = "bench"


# Set-up


def setup_django(*, migrate: bool = False, **environment: str) -> None:
    """Django with config/settings.py, these variables and the rest of the environment; never .env."""
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings", ENV_FILE="/dev/null", **environment)
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def argument_parser(module_doc: str, module: str) -> argparse.ArgumentParser:
    """Flags of ``python -m MODULE``, described by the first paragraph of its docstring."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=module_doc.split("\n\n")[0])


def full_size_encoders(folder: Path) -> dict[str, str]:
    """CLIP_IMAGE_MODEL and CLIP_TEXT_MODEL for the full-size stand-ins in ``folder``; exits saying how to make them."""
    if not all((folder / part / "modules.json").exists() for part in ("clip", "text")):
        sys.exit(
            f"No full-size stand-in encoders in {folder}: "
            f"python manage.py make_standin_encoders --full-size {folder}   (about a minute)"
        )
    return {"CLIP_IMAGE_MODEL": str(folder / "clip"), "CLIP_TEXT_MODEL": str(folder / "text")}


# Serving


class Client:
    """One keep-alive HTTP connection, as a browser or an API client would hold."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> tuple[int, dict, float, dict[str, float]]:
        """Status, JSON body, milliseconds to the last byte, and the Server-Timing header's parts."""
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


@dataclass
class Server:
    port: int
    process: subprocess.Popen

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(*, workers: int | None = 1) -> Iterator[Server]:
    """gunicorn with config/gunicorn.conf.py on 127.0.0.1, answering searches; stopped at the end.

    ``workers=None``: the config's number. The server inherits this process's environment.
    """
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.conf.py")]
    command += ["--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null"]
    if workers:
        command += ["--workers", str(workers)]
    process = subprocess.Popen([*command, "config.wsgi"], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL)
    try:
        server = Server(port, process)
        wait_ready(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_ready(server: Server, *, seconds: float = 300) -> None:
    """Until a search answers 200 (the first one loads the text encoder); exits when it cannot."""
    client = Client(server.port)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not server.alive:
            sys.exit(f"gunicorn exited with {server.process.returncode}")
        try:
            status, body, _, _ = client.get("/api/search?q=warm+up")
        except (ConnectionError, OSError, http.client.HTTPException):
            client.connection.close()
            time.sleep(0.5)
            continue
        if status != 200:
            sys.exit(f"warm-up answered {status}: {body}")
        return
    sys.exit(f"gunicorn did not answer within {seconds:g} s")


# Loading


def row_sha256(row: int) -> str:
    """A loaded row's sha256: its number in hex, so sha256 order is row order."""
    return f"{row:064x}"


def load_rows(vectors: np.ndarray, *, path_of: Callable[[int], str], block: int = 50_000) -> float:
    """Empty the table and its HNSW index, then write one row per vector with the one bulk loader; seconds taken.

    The index is left for ``build_hnsw_index``: building it once over all rows is far faster.
    """
    from django.db import connection

    from gallery.bulkload import images_copy

    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")
        cursor.execute("TRUNCATE gallery_image RESTART IDENTITY CASCADE")  # and its labels
    started = time.perf_counter()
    for start in range(0, len(vectors), block):
        rows = range(start, min(start + block, len(vectors)))
        images_copy(
            sha256s=[row_sha256(row) for row in rows],
            paths=[path_of(row) for row in rows],
            vectors=vectors[start : start + block],
            encoder_id=BENCH_ENCODER,
        )
    return time.perf_counter() - started


def build_hnsw_index(*, memory: str, workers: int, m: int | None = None, ef_construction: int | None = None) -> float:
    """The migrations' HNSW index, for the vector type the column has, then VACUUM ANALYZE; seconds the build took.

    ``m`` and ``ef_construction`` build another graph than the migrations' one.
    """
    from django.db import connection

    from gallery.fields import rebuild_hnsw_index
    from gallery.models import Image

    index = copy.copy(next(i for i in Image._meta.indexes if i.name == INDEX_NAME))
    index.m = m or index.m
    index.ef_construction = ef_construction or index.ef_construction
    started = time.perf_counter()
    with connection.schema_editor() as editor:
        rebuild_hnsw_index(editor, Image, index, memory=memory, workers=workers)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE gallery_image")
    return seconds


def ids_by_row() -> np.ndarray:
    """The id of each loaded row, in row order."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM gallery_image WHERE encoder = %s ORDER BY sha256", [BENCH_ENCODER])
        return np.array([id_ for (id_,) in cursor.fetchall()], dtype=np.int64)


# Measuring


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the k nearest rows to each query by cosine, nearest first (unit rows: the largest dot products)."""
    result = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ data.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        result[start : start + 100] = np.take_along_axis(top, order, axis=1)
    return result


def recall(answers: list[list[int]], truth: np.ndarray) -> float:
    """Mean share of each query's true top k (ids) among what was answered."""
    k = truth.shape[1]
    return float(
        np.mean([len(set(answer) & set(row.tolist())) / k for answer, row in zip(answers, truth, strict=True)])
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))
