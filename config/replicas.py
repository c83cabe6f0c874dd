"""Read replicas (DATABASE_REPLICA_URLS): searches read from them, everything else uses the primary.

Routing is explicit: the search selectors call ``read()`` with a function of a database alias, and
run every statement of that search (the SET LOCALs of ef_search and iterative scans, the count that
picks exact search, the ranked query) on that alias, in its own transaction. Nothing else reads a
replica: the router below sends every other read, every write, the admin, ingestion and
migrations to the primary ("default"), so an image loaded from a replica is still saved to the
primary.

- Which replica: round-robin over the replicas not backed off.
- A replica that fails (cannot connect, or the connection breaks mid-query) is not used by this
  process for REPLICA_RETRY_SECONDS; the search is run again on the primary, so the person never
  sees it. When the primary is down too, its error reaches core's DatabaseUnavailableMiddleware
  (503).
- Read your writes: inside ``primary_only()`` (core's ReadYourWritesMiddleware, for a client that
  wrote in the last REPLICA_READ_YOUR_WRITES_SECONDS) ``read()`` uses the primary. A lookup of one
  image that a replica does not have yet (it lags) is asked of the primary too (``missing``).

With no replicas configured ``read(query)`` is ``query("default")``: nothing changes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)

T = TypeVar("T")

PRIMARY = DEFAULT_DB_ALIAS

_primary_only: ContextVar[bool] = ContextVar("replicas_primary_only", default=False)
_lock = threading.Lock()
_turn = itertools.count()
# alias -> time.monotonic() until which this process leaves that replica alone
_backed_off: dict[str, float] = {}


def aliases() -> list[str]:
    """The replicas' database aliases (settings.DATABASE_REPLICAS), in order."""
    return list(getattr(settings, "DATABASE_REPLICAS", ()))


@contextlib.contextmanager
def primary_only() -> Iterator[None]:
    """Inside this block ``read()`` reads the primary (read your own writes)."""
    token = _primary_only.set(True)
    try:
        yield
    finally:
        _primary_only.reset(token)


def choose() -> str:
    """The alias the next search reads from: a healthy replica in turn, else the primary."""
    replicas = aliases()
    if not replicas or _primary_only.get():
        return PRIMARY
    now = time.monotonic()
    with _lock:
        healthy = [alias for alias in replicas if _backed_off.get(alias, 0.0) <= now]
        if not healthy:
            return PRIMARY
        return healthy[next(_turn) % len(healthy)]


def backed_off(alias: str) -> bool:
    """Whether this process is leaving ``alias`` alone after a failure."""
    with _lock:
        return _backed_off.get(alias, 0.0) > time.monotonic()


def forget_failures() -> None:
    """Use every replica again (tests; a replica known to be back)."""
    with _lock:
        _backed_off.clear()


def _failed(alias: str, exc: DatabaseError) -> None:
    """A query on ``alias`` raised: back off from the replica if its connection is gone."""
    connection = connections[alias]
    # A query error on a live replica (a conflict with recovery, say) leaves it in use; a lost or
    # refused connection is closed and the replica left alone for a while.
    if not connection.is_usable():
        with contextlib.suppress(DatabaseError):
            connection.close()
        with _lock:
            _backed_off[alias] = time.monotonic() + settings.REPLICA_RETRY_SECONDS
        logger.warning(
            "replica %s is unavailable, reading from the primary for %ss: %s",
            alias,
            settings.REPLICA_RETRY_SECONDS,
            exc,
        )
    else:
        logger.warning("replica %s could not answer, asked the primary: %s", alias, exc)


def read(query: Callable[[str], T], *, missing: Callable[[T], bool] | None = None) -> T:
    """``query(alias)`` on a replica; on the primary when there is none, it fails, or ``missing(result)``.

    ``query`` must do all its work on the alias it is given (``connections[alias]``,
    ``.using(alias)``, ``transaction.atomic(using=alias)``) and may be called twice.
    """
    alias = choose()
    if alias != PRIMARY:
        try:
            result = query(alias)
        except DatabaseError as exc:
            _failed(alias, exc)
        else:
            if missing is None or not missing(result):
                return result
    return query(PRIMARY)


class PrimaryRouter:
    """Every read and write goes to the primary unless the query names a replica (``read()``).

    Rows loaded from a replica are written back to the primary; related rows of a row loaded from a
    replica are read from that replica (the same snapshot). Migrations run on the primary only: a
    physical replica replays them.
    """

    def db_for_read(self, model, **hints):
        instance = hints.get("instance")
        if instance is not None and instance._state.db in aliases():
            return instance._state.db
        return PRIMARY

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db not in aliases()
