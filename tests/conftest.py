import hashlib
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

# The generated world and its trained encoders, for tests of what search finds.
pytest_plugins = ["tests.world"]

ROOT = Path(__file__).resolve().parent.parent
MODELS_CACHE = ROOT / "var" / "test-models"


def _standins_fingerprint() -> str:
    source = (ROOT / "encoders" / "standins.py").read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


@pytest.fixture(scope="session")
def standin_encoders() -> tuple[Path, Path]:
    """Tiny CLIP-shaped stand-ins, built offline once and reused while encoders/standins.py is unchanged."""
    from encoders.standins import build_standins

    directory = MODELS_CACHE / _standins_fingerprint()
    for stale in MODELS_CACHE.glob("*"):
        if stale != directory:
            shutil.rmtree(stale, ignore_errors=True)
    clip, text = directory / "clip", directory / "text"
    if not (clip / "modules.json").exists() or not (text / "modules.json").exists():
        build_standins(directory, dimensions=512)
    return clip, text


@pytest.fixture(scope="session", autouse=True)
def _use_standins(standin_encoders, tmp_path_factory):
    """Every test runs with the stand-ins and a fresh MEDIA_ROOT; subprocesses inherit both."""
    from encoders import embeddings

    clip, text = standin_encoders
    media = tmp_path_factory.mktemp("media")
    values = {"CLIP_IMAGE_MODEL": str(clip), "CLIP_TEXT_MODEL": str(text), "MEDIA_ROOT": str(media)}
    for name, value in values.items():
        setattr(settings, name, value)
        os.environ[name] = value
    embeddings.clear_cache()
    yield
    embeddings.clear_cache()


@pytest.fixture
def media_root():
    return Path(settings.MEDIA_ROOT)
