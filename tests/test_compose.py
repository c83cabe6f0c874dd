"""compose.yaml, read as Docker Compose reads it (no Docker here): its services refer to each other consistently.

What a typo would break only on someone's first ``docker compose up``: a dependency on a service
that is not there, a named volume not declared, a mounted script missing or not executable, a
profile-only service that the default start would wait for, the site and the worker talking to
different brokers or queues.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def depends_on(service: dict) -> dict[str, dict]:
    needs = service.get("depends_on", {})
    return {name: {} for name in needs} if isinstance(needs, list) else needs


def test_dependencies_exist_and_profile_services_are_optional():
    for name, service in SERVICES.items():
        for needed, how in depends_on(service).items():
            assert needed in SERVICES, f"{name} depends on {needed}, which is not a service"
            if SERVICES[needed].get("profiles") and not service.get("profiles"):
                # Without required: false the default start (no profile) would refuse to run.
                assert how.get("required") is False, f"{name} needs {needed}, which only runs with a profile"


def test_named_volumes_are_declared_and_mounted_files_exist():
    declared = set(COMPOSE["volumes"])
    used = set()
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                path = ROOT / source
                assert path.is_file(), f"{name} mounts {source}, which is not in the repository"
                assert os.access(path, os.X_OK), f"{source} must be executable (the image runs it)"
                subprocess.run(["sh", "-n", str(path)], check=True)  # valid shell
            else:
                assert source in declared, f"{name} uses the volume {source}, not declared under volumes:"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_the_site_and_the_worker_share_the_broker_the_queue_the_database_and_the_files():
    web, worker = SERVICES["web"], SERVICES["worker"]
    for setting in ("CELERY_BROKER_URL", "EMBED_QUEUE", "DATABASE_URL", "MEDIA_ROOT", "HF_HOME"):
        assert web["environment"][setting] == worker["environment"][setting], setting
    assert set(web["volumes"]) == set(worker["volumes"])
    assert web.get("image") == worker.get("image") and web.get("build") == worker.get("build")

    broker = re.fullmatch(r"redis://(\w+):(\d+)/\d+", web["environment"]["CELERY_BROKER_URL"])
    assert broker and broker[1] in SERVICES and "redis" in SERVICES[broker[1]]["image"]
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "config", "worker"]
    assert command[command.index("-Q") + 1] == web["environment"]["EMBED_QUEUE"]
    for service in (web, worker):
        assert depends_on(service)[broker[1]]["condition"] == "service_healthy"
        assert depends_on(service)["migrate"]["condition"] == "service_completed_successfully"


def test_the_database_urls_name_services_that_run_postgresql():
    for name in ("web", "worker", "migrate"):
        url = SERVICES[name]["environment"]["DATABASE_URL"]
        host = re.search(r"@(\w+):5432/", url)[1]
        assert "pgvector" in SERVICES[host]["image"]
    primary, replica = SERVICES["db"], SERVICES["replica"]
    assert replica["image"] == primary["image"]  # pg_basebackup needs the same major version
    assert replica["profiles"] == ["replica"]
    assert Path(ROOT / "compose" / "replica.sh").read_text().count("--write-recovery-conf") == 1
    # The replica streams from the service the site writes to.
    assert '--host="${PRIMARY_HOST:-db}"' in (ROOT / "compose" / "replica.sh").read_text()


# The replication scripts themselves, run with the embedded PostgreSQL's own binaries


def _run_as() -> dict:
    """Popen arguments running as a user PostgreSQL accepts: pgserver's own ``pgserver`` user under root."""
    if os.geteuid() != 0:
        return {}
    from pgserver.utils import ensure_user_exists

    entry = ensure_user_exists("pgserver")
    return {"user": entry.pw_uid, "group": entry.pw_gid}


@pytest.fixture
def postgres_bin() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


@pytest.fixture
def scratch():
    """A folder the PostgreSQL user owns (pytest's tmp_path is closed to others when tests run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="compose-replica-"))
    if run_as := _run_as():
        os.chown(folder, run_as["user"], run_as["group"])
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_compose_scripts_make_a_streaming_replica(postgres_bin, scratch):
    """compose/db-replication.sh on an initialised primary, then compose/replica.sh: a hot standby that follows it."""
    run_as = _run_as()
    environment = {**os.environ, "PATH": f"{postgres_bin}:{os.environ['PATH']}", "PGPASSWORD": "imagesearch"}
    environment.pop("PGDATA", None)

    def run(*command, **env):
        return subprocess.run(
            command, env={**environment, **env}, check=True, capture_output=True, text=True, timeout=60, **run_as
        ).stdout

    primary, replica, sockets = scratch / "primary", scratch / "replica", scratch / "sockets"
    run("mkdir", "-m", "700", "-p", str(sockets), str(replica))  # as the PostgreSQL user, who then owns them
    (scratch / "pw").write_text("imagesearch\n")
    run(
        "initdb",
        "-D",
        str(primary),
        "-U",
        "imagesearch",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={scratch / 'pw'}",
    )
    # As the pgvector image leaves it: initdb's replication lines are for loopback only (a replica in
    # another container matches none of them), and everything else needs a password.
    hba = primary / "pg_hba.conf"
    lines = [line for line in hba.read_text().splitlines() if "replication" not in line]
    hba.write_text("\n".join(lines) + "\nhost all all all scram-sha-256\n")

    primary_port, replica_port = _free_port(), _free_port()
    servers = []
    try:
        servers.append(
            subprocess.Popen(
                [
                    "postgres",
                    "-D",
                    str(primary),
                    "-p",
                    str(primary_port),
                    "-k",
                    str(sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                ],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **run_as,
            )
        )
        local = {"PGHOST": str(sockets), "PGPORT": str(primary_port)}
        wait_ready(run, **local)
        run("createdb", "-U", "imagesearch", "imagesearch", **local)
        run(
            "sh",
            str(ROOT / "compose" / "db-replication.sh"),
            POSTGRES_USER="imagesearch",
            POSTGRES_DB="imagesearch",
            PGDATA=str(primary),
            REPLICATION_PASSWORD="s3cret-replication",
            **local,
        )
        run("psql", "-U", "imagesearch", "-d", "imagesearch", "-c", "SELECT pg_reload_conf()", **local)

        def start_replica(primary_port):
            servers.append(
                subprocess.Popen(
                    [
                        "sh",
                        str(ROOT / "compose" / "replica.sh"),
                        "-p",
                        str(replica_port),
                        "-k",
                        str(sockets),
                        "-c",
                        "listen_addresses=",
                    ],
                    env={
                        **environment,
                        "PGDATA": str(replica),
                        "PRIMARY_HOST": "127.0.0.1",
                        "PRIMARY_PORT": str(primary_port),
                        "REPLICATION_PASSWORD": "s3cret-replication",
                    },
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    **run_as,
                )
            )
            wait_ready(run, PGHOST=str(sockets), PGPORT=str(replica_port))

        def on_replica(sql):
            return run(
                "psql",
                "-U",
                "imagesearch",
                "-d",
                "imagesearch",
                "-tAc",
                sql,
                PGHOST=str(sockets),
                PGPORT=str(replica_port),
            ).strip()

        start_replica(primary_port)
        assert (replica / "standby.signal").exists()
        assert on_replica("SELECT pg_is_in_recovery()") == "t"
        run(
            "psql",
            "-U",
            "imagesearch",
            "-d",
            "imagesearch",
            "-c",
            "CREATE TABLE written (n int); INSERT INTO written VALUES (42)",
            **local,
        )
        assert wait_for(lambda: on_replica("SELECT to_regclass('written') IS NOT NULL") == "t")
        assert on_replica("SELECT n FROM written") == "42"

        # A second start keeps its copy: no new base backup (the primary's port is wrong now), still a standby.
        stopped = servers.pop()
        stopped.terminate()
        stopped.wait(timeout=30)
        start_replica(_free_port())
        assert on_replica("SELECT pg_is_in_recovery()") == "t"
        assert on_replica("SELECT n FROM written") == "42"
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)


def wait_ready(run, **env):
    def ready():
        try:
            run("pg_isready", "-q", **env)
        except subprocess.CalledProcessError:
            return False
        return True

    assert wait_for(ready), f"PostgreSQL on {env} did not start"


def wait_for(condition, timeout=30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
