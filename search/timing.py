"""Where a search spends its time, for the Server-Timing header (browsers' dev tools and bench/search.py read it).

A request opens a ``Timings`` with ``collect()``; code deep inside (embeddings, selectors) adds
durations with ``measure(name)`` without knowing about requests. Outside a ``collect()`` block
``measure`` costs one context-variable lookup.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from contextvars import ContextVar

_current: ContextVar[dict[str, float] | None] = ContextVar("search_timings", default=None)


@contextlib.contextmanager
def collect() -> Iterator[dict[str, float]]:
    """Collect the durations (milliseconds, by name) measured inside this block."""
    timings: dict[str, float] = {}
    token = _current.set(timings)
    try:
        yield timings
    finally:
        _current.reset(token)


@contextlib.contextmanager
def measure(name: str) -> Iterator[None]:
    timings = _current.get()
    if timings is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - started) * 1000


def server_timing(timings: dict[str, float]) -> str:
    """The Server-Timing header's value: ``encode;dur=21.3, db;dur=1.9``."""
    return ", ".join(f"{name};dur={duration:.2f}" for name, duration in timings.items())


def with_server_timing(view):
    """Time what a view measures (the encoders, the database) into its response's Server-Timing header."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        with collect() as timings:
            response = view(request, *args, **kwargs)
        if timings:
            response["Server-Timing"] = server_timing(timings)
        return response

    return wrapped
