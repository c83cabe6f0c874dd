"""Search by image runs the image encoder on an upload: the one request that can pin the CPU. Two guards keep it in check.

- A rate per client (IMAGE_SEARCH_RATE, e.g. ``20/minute``): a fixed-window counter in Django's
  cache. The client is the logged-in user, else the address the request came from: REMOTE_ADDR,
  or with TRUSTED_PROXY_COUNT set, the address the outermost of those proxies wrote into
  X-Forwarded-For (anyone can send that header, so it is ignored otherwise).
- A cap on the images being decoded and encoded at once in this process
  (IMAGE_SEARCH_CONCURRENCY): a request waits at most IMAGE_SEARCH_QUEUE_TIMEOUT seconds for a
  slot, so many clients together cannot queue up unbounded work behind the encoder.

Over either, ``Throttled`` (a 429 with Retry-After). Text search and the similar walk are not
limited: a text query costs a fraction of an image and is cached, the walk needs no encoder.

The counters live in the default cache. Django's default cache, LocMemCache, is per process: with
several gunicorn workers each one counts on its own, so a client may get up to workers x the
rate. A shared cache (Redis, Memcached, the database cache) makes the rate site-wide.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# The time the windows are counted in; tests replace it to step past a window without sleeping.
clock = time.time

# Seconds in each period a rate may name ("20/minute"; a plural "s" is allowed too).
PERIODS = (
    dict.fromkeys(("s", "sec", "second"), 1)
    | dict.fromkeys(("m", "min", "minute"), 60)
    | dict.fromkeys(("h", "hour"), 3600)
    | dict.fromkeys(("d", "day"), 86400)
)
_RATE = re.compile(r"(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?", re.IGNORECASE)


class Throttled(Exception):
    """Too many image searches: from this client in this window, or in this process at once."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        unit = "second" if retry_after == 1 else "seconds"
        super().__init__(f"Too many image searches; try again in {retry_after} {unit}.")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


@functools.lru_cache(maxsize=8)
def parse_rate(text: str) -> Rate | None:
    """``"20/minute"`` (also ``20/m``, ``100/hour``, ``5/10s``) as a Rate; None for ``""`` or ``"0"`` (no limit)."""
    text = (text or "").strip()
    if text in ("", "0"):
        return None
    match = _RATE.fullmatch(text)
    if not match or match.group(3).lower() not in PERIODS:
        raise ImproperlyConfigured(
            f"IMAGE_SEARCH_RATE={text!r} is not a rate: write a count per period, e.g. 20/minute or 100/hour, or 0 for none."
        )
    count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3).lower()
    if count == 0:
        return None
    return Rate(count=count, seconds=max(1, multiple) * PERIODS[unit])


def client_address(request) -> str:
    """The address to count a request against: an IPv4 address, or the /64 an IPv6 address is in."""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        # Each proxy appends the address it was sent from; what came before the outermost one's
        # entry is whatever the client wrote, so the client is the Nth entry from the right.
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if forwarded:
            address = forwarded[-min(proxies, len(forwarded))]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # No usable address (a Unix socket without a proxy setting): such clients share one count.
        return "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        # One IPv6 client usually holds a whole /64; counting single addresses would let it rotate.
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_key(request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_address(request)}"


def check_rate(request) -> None:
    """Count one image search against the client's rate; raise Throttled when the window is full."""
    rate = parse_rate(settings.IMAGE_SEARCH_RATE)
    if rate is None:
        return
    now = clock()
    window = int(now // rate.seconds)
    key = f"image-search-rate:{client_key(request)}:{rate.seconds}:{window}"
    # add() then incr() is atomic in Memcached and Redis, and under LocMemCache's lock. A fixed
    # window lets a client send up to twice the rate across a window's edge, which is enough here.
    cache.add(key, 0, timeout=rate.seconds + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, timeout=rate.seconds + 1)
        count = 1
    if count > rate.count:
        logger.info("image search rate exceeded by %s", client_key(request))
        raise Throttled(retry_after=max(1, math.ceil((window + 1) * rate.seconds - now)))


@functools.lru_cache(maxsize=8)
def _slots(size: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(size)


@contextlib.contextmanager
def encoding_slot() -> Iterator[None]:
    """Hold one of the IMAGE_SEARCH_CONCURRENCY slots of this process; raise Throttled when none frees up in time."""
    size = settings.IMAGE_SEARCH_CONCURRENCY
    if size <= 0:
        yield
        return
    slots = _slots(size)
    wait = settings.IMAGE_SEARCH_QUEUE_TIMEOUT
    if not slots.acquire(timeout=wait):
        logger.warning("image search refused: no free encoding slot (of %d) within %s s", size, wait)
        raise Throttled(retry_after=max(1, math.ceil(wait)))
    try:
        yield
    finally:
        slots.release()


@contextlib.contextmanager
def image_search(request) -> Iterator[None]:
    """Guard decoding and encoding one uploaded image: the client's rate first, then a slot."""
    check_rate(request)
    with encoding_slot():
        yield
