"""Decoding in worker processes, so one pathological file cannot stall or crash a run.

Each ingestion thread owns one worker process and talks to it over a pipe. A file that takes
longer than the time limit gets its worker killed (and a fresh one started); a decoder that
crashes the process (a segfault in a codec) costs that file only. The workers are spawned, not
forked, so they never inherit torch's threads or the parent's database connections.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from .imaging import DecodedImage, UnreadableImage


def _serve(conn, function: str, options: dict) -> None:
    import os
    import warnings

    from django.utils.module_loading import import_string

    # Codecs (libtiff, libjpeg) chatter on stderr about the broken files they meet; the reason
    # that matters comes back through the pipe.
    # Below the encoder: torch keeps its cores, decoding fills the gaps (measured in bench/README.md).
    os.nice(10)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    warnings.simplefilter("ignore")
    decode = import_string(function)
    while True:
        try:
            path = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return  # the parent is gone
        try:
            result = ("ok", decode(path, **options))
        except UnreadableImage as exc:
            result = ("unreadable", str(exc))
        except Exception as exc:  # never let one file take the worker down
            result = ("unreadable", f"cannot decode ({exc.__class__.__name__}: {exc})")
        conn.send(result)


class _Worker:
    def __init__(self, context, function: str, options: dict):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, function, options), daemon=True, name="decode")
        self.process.start()
        child.close()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class DecodePool:
    """Thread-safe: every calling thread gets its own worker process."""

    def __init__(
        self, *, timeout: float, thumbnail_size: int, max_pixels: int, function: str = "gallery.imaging.decode"
    ):
        self.timeout = timeout
        self.function = function
        self.options = {"thumbnail_size": thumbnail_size, "max_pixels": max_pixels}
        self._context = multiprocessing.get_context("spawn")
        self._local = threading.local()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def _worker(self) -> _Worker:
        worker = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = _Worker(self._context, self.function, self.options)
            with self._lock:
                self._workers.append(worker)
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.stop()
        self._local.worker = None

    def decode(self, path: Path) -> DecodedImage:
        worker = self._worker()
        try:
            worker.conn.send(str(path))
            if not worker.conn.poll(self.timeout):
                self._discard(worker)
                raise UnreadableImage(f"took longer than {self.timeout:g}s to decode (INGEST_FILE_TIMEOUT), skipped")
            status, value = worker.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError) as exc:
            self._discard(worker)
            raise UnreadableImage(f"crashed the image decoder ({exc.__class__.__name__})") from exc
        if status != "ok":
            raise UnreadableImage(value)
        return value

    def close(self) -> None:
        with self._lock:
            for worker in self._workers:
                worker.stop()
            self._workers.clear()
