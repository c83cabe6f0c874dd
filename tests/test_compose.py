"""compose.yaml, read as Docker Compose reads it (no Docker here): its services refer to each other consistently.

What a typo would break only on someone's first ``docker compose up``: a dependency on a service
that is not there, a named volume not declared, a mounted script missing or not executable, a
profile-only service that the default start would wait for, the site and the worker talking to
different brokers or queues.
"""

import os
import re
import subprocess
from pathlib import Path

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
