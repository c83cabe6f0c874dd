"""Real servers the tests start for themselves (redis-server), and the rule for a missing one.

A test that needs a program this machine lacks skips, saying how to get it; with CI set (as .ci/run
and CI services do) it fails instead, so CI cannot pass without running it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import on_ci

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def require_program(path: str | os.PathLike, reason: str) -> None:
    """Skip (locally) or fail (on CI) with ``reason`` unless ``path`` is an executable file."""
    if Path(path).is_file() and os.access(path, os.X_OK):
        return
    if on_ci():
        pytest.fail(f"CI is set and {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def redis_server(folder: Path, *, reason: str) -> Iterator[Path]:
    """A private, throwaway redis-server (no TCP port, no persistence) on a Unix socket in ``folder``.

    Yields the socket once the server answers PING; ``reason`` says why a missing server matters.
    """
    require_program(REDIS_SERVER, f"{reason}: scripts/setup --test installs it (sudo apt-get install redis-server)")
    import redis

    socket = folder / "redis.sock"
    options = ["--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"]
    options += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    process = subprocess.Popen([REDIS_SERVER, *options], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(unix_socket_path=str(socket))
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
                if client.ping():
                    break
            assert process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)
        client.close()
        yield socket
    finally:
        process.terminate()
        process.wait(timeout=10)
