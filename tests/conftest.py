import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

# The generated world and its trained encoders, for tests of what search finds.
pytest_plugins = ["tests.world"]

ROOT = Path(__file__).resolve().parent.parent
MODELS_CACHE = ROOT / "var" / "test-models"
# Fixtures that stop the database server: every xdist worker's test database lives on it.
STOPS_THE_DATABASE = {"database_outage"}


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config, items):
    """Mark the tests that stop the database ``serial``; pytest-xdist's workers skip them, saying how to run them.

    scripts/test runs the suite serially: on 2 cores -n 2 was no faster (bench/README.md, "Test
    suite"). With -n anyway: ``pytest -n 2 -m "not serial" && pytest -m serial``.
    """
    on_a_worker = "PYTEST_XDIST_WORKER" in os.environ
    for item in items:
        if STOPS_THE_DATABASE & set(item.fixturenames):
            item.add_marker(pytest.mark.serial)
            if on_a_worker:
                item.add_marker(
                    pytest.mark.skip(reason="stops the database other workers use: pytest -m serial, without -n")
                )


def _standins_fingerprint() -> str:
    source = (ROOT / "encoders" / "standins.py").read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


@pytest.fixture(scope="session")
def standin_encoders() -> tuple[Path, Path]:
    """Tiny CLIP-shaped stand-ins, built offline once and reused while encoders/standins.py is unchanged."""
    from encoders.standins import build_standins

    directory = MODELS_CACHE / _standins_fingerprint()
    clip, text = directory / "clip", directory / "text"
    MODELS_CACHE.mkdir(parents=True, exist_ok=True)
    # pytest-xdist's workers all start here: one builds, the others wait for it and reuse.
    with open(MODELS_CACHE.with_name("test-models.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in MODELS_CACHE.glob("*"):
            if stale != directory:
                shutil.rmtree(stale, ignore_errors=True)
        if not (clip / "modules.json").exists() or not (text / "modules.json").exists():
            build_standins(directory, dimensions=512)
    return clip, text


@pytest.fixture(scope="session", autouse=True)
def _use_standins(standin_encoders, tmp_path_factory):
    """Every test runs with the stand-ins and a fresh MEDIA_ROOT; subprocesses inherit both.

    Settings and environment are as they were once the session ends (for code that runs after it,
    such as other plugins' session hooks or a test runner embedding pytest).
    """
    from encoders import embeddings

    clip, text = standin_encoders
    media = tmp_path_factory.mktemp("media")
    values = {"CLIP_IMAGE_MODEL": str(clip), "CLIP_TEXT_MODEL": str(text), "MEDIA_ROOT": str(media)}
    # override_settings, not setattr: it tells the cached storages that MEDIA_ROOT changed.
    with override_settings(**values), pytest.MonkeyPatch.context() as environment:
        for name, value in values.items():
            environment.setenv(name, value)
        embeddings.clear_cache()
        yield
        embeddings.clear_cache()


@pytest.fixture
def media_root():
    return Path(settings.MEDIA_ROOT)
