"""Search latency for Prometheus, by kind of search (text, image, similar).

Observed around the whole search on the server: the query's encoding (text, or the uploaded image's
decode and encode) and the database. Only searches that return a page are observed; refusals and
errors show in django-prometheus's request metrics instead. The histogram lives in
prometheus_client's default registry whether or not metrics are exposed (an observation costs
about a microsecond); core/metrics.py exposes it when METRICS_ENABLED is set.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Histogram

KINDS = ("text", "image", "similar")

SEARCH_SECONDS = Histogram(
    "imagesearch_search_seconds",
    "Time to answer a search on the server (query encoding and database), by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
for _kind in KINDS:  # every kind shows from the first scrape, at 0
    SEARCH_SECONDS.labels(kind=_kind)


def observe(kind: str, started: float) -> None:
    """Record a search of ``kind`` that began at ``started`` (time.perf_counter()) and has its page."""
    SEARCH_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)


@contextlib.contextmanager
def timed(kind: str) -> Iterator[None]:
    """Observe the block as a search of ``kind`` when it finishes without an exception."""
    started = time.perf_counter()
    yield
    observe(kind, started)
