"""A real streaming replica of the embedded PostgreSQL, for the tests and bench/load.py --replica.

Made with the embedded server's own binaries: ``pg_basebackup -R -X stream`` copies the primary's
data folder (every database in it) and writes ``standby.signal`` and ``primary_conninfo``; the copy
is started with ``pg_ctl`` on its own Unix socket folder and port, and streams the primary's WAL
from then on. The embedded primary already allows it: ``wal_level = replica`` and
``max_wal_senders = 10`` are PostgreSQL's defaults, and initdb's pg_hba.conf trusts local
replication connections. No replication slot is made, so a stopped replica holds no WAL back.

    replica = StreamingReplica.create(primary={"host": ..., "port": ..., "user": "postgres"})
    replica.url("imagesearch")      # for DATABASE_REPLICA_URLS
    replica.wait_for_primary()      # until everything committed on the primary is visible on it
    replica.remove()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _binaries() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _system_user() -> str | None:
    # PostgreSQL refuses to run as root; pgserver runs it as "pgserver" then (and made that user).
    return "pgserver" if os.geteuid() == 0 else None


class ReplicaError(RuntimeError):
    """The replica could not be made, started or caught up."""


class StreamingReplica:
    def __init__(self, *, primary: dict, folder: Path, port: int):
        self.primary = primary
        self.folder = folder
        self.data = folder / "data"
        self.socket_dir = folder / "socket"
        self.log = folder / "log"
        self.port = port

    @classmethod
    def create(cls, *, primary: dict, port: int = 5433, folder: Path | None = None) -> StreamingReplica:
        """Copy the running primary (``host``, ``port``, ``user`` of psycopg) and start the copy as its replica."""
        # A short path: a Unix socket's path must fit in 107 bytes.
        folder = Path(folder or tempfile.mkdtemp(prefix="replica-", dir="/tmp"))
        replica = cls(primary=primary, folder=folder, port=port)
        replica.socket_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)
        os.chmod(replica.socket_dir, 0o777)
        if user := _system_user():
            shutil.chown(folder, user)
        source = ["-h", str(primary["host"]), "-p", str(primary["port"]), "-U", primary.get("user") or "postgres"]
        replica._run("pg_basebackup", ["-D", str(replica.data), "-R", "-X", "stream", "-c", "fast", *source])
        replica.start()
        return replica

    def _run(self, program: str, arguments: list[str], *, timeout: float = 120) -> None:
        result = subprocess.run(
            [str(_binaries() / program), *arguments],
            user=_system_user(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ReplicaError(
                f"{program} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self) -> None:
        from pgserver.postgres_server import _preload_libraries_args

        options = f"-h '' -k {self.socket_dir} -p {self.port}"
        arguments = ["-D", str(self.data), "-w", "-l", str(self.log), "-o", options, *_preload_libraries_args()]
        self._run("pg_ctl", [*arguments, "start"])

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the replica (``immediate``: as if its machine went away)."""
        self._run("pg_ctl", ["-D", str(self.data), "-w", "-m", mode, "stop"])

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running:
            self.stop(mode="immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    # Connecting

    @property
    def server(self) -> dict:
        """psycopg's ``host``, ``port`` and ``user`` for the replica."""
        return {"host": str(self.socket_dir), "port": self.port, "user": "postgres"}

    def params(self, dbname: str) -> dict:
        """psycopg's connection parameters for ``dbname`` on the replica."""
        return {**self.server, "dbname": dbname}

    def url(self, dbname: str) -> str:
        """A database URL for DATABASE_REPLICA_URLS."""
        return f"postgres://postgres@/{dbname}?host={self.socket_dir}&port={self.port}"

    def settings_dict(self, dbname: str) -> dict:
        """Django's DATABASES entry for ``dbname`` on the replica."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "USER": "postgres",
            "HOST": str(self.socket_dir),
            "PORT": str(self.port),
            "OPTIONS": {"connect_timeout": 3},
        }

    def _execute(self, sql: str, *, dbname: str = "postgres"):
        import psycopg

        with psycopg.connect(**self.params(dbname), autocommit=True, connect_timeout=5) as connection:
            return connection.execute(sql).fetchone()

    # Replay

    def pause_replay(self) -> None:
        """Keep receiving WAL but apply none of it: the replica lags from here on."""
        self._execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self._execute("SELECT pg_wal_replay_resume()")

    def wait_for_primary(self, *, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        import psycopg

        with psycopg.connect(**self.primary, dbname="postgres", autocommit=True) as primary:
            (target,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        deadline = time.monotonic() + timeout
        while True:
            (behind,) = self._execute(f"SELECT pg_wal_lsn_diff('{target}', pg_last_wal_replay_lsn()) > 0")
            if not behind:
                return
            if time.monotonic() > deadline:
                raise ReplicaError(f"the replica did not replay up to {target} within {timeout:g} s; log: {self.log}")
            time.sleep(0.02)
