"""The generated world and its trained encoders, for tests that check what search finds (not only that it answers).

``world_pictures`` draws a held-out world once per session (a seed the encoders never saw) and
embeds every picture the way ingestion does (gallery.imaging.decode, then the image encoder);
``world_collection`` puts it in the test database with those vectors and switches the settings to
the trained encoders, so text queries are encoded by the trained text twin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone

from encoders import embeddings, world
from gallery.imaging import decode
from gallery.models import Image

TRAINED = Path(__file__).resolve().parent.parent / "encoders" / "trained"
TRAINED_SETTINGS = {
    "CLIP_IMAGE_MODEL": str(TRAINED / "world-image"),
    "CLIP_TEXT_MODEL": str(TRAINED / "world-text"),
}
# Not a seed the encoders were trained or measured on (encoders/training.py uses 1 and 2).
WORLD_SEED = 11
# 24 pictures of each of the 12 kinds, 3 of each colour and kind on average.
WORLD_COUNT = 288


@dataclass(frozen=True)
class Picture:
    path: str  # relative to the world's folder, as embed_images records it
    labels: frozenset[str]
    width: int
    height: int
    format: str
    vector: object
    taken_at: dt.datetime


@pytest.fixture(scope="session")
def world_pictures(tmp_path_factory) -> tuple[Path, list[Picture]]:
    """(folder, pictures): the held-out world drawn once, each picture decoded and encoded like ingestion does."""
    folder = tmp_path_factory.mktemp("world")
    specs = world.make_world(folder, count=WORLD_COUNT, seed=WORLD_SEED)
    decoded = []
    for spec in specs:
        with open(folder / spec.path, "rb") as handle:
            decoded.append(decode(handle))
    with override_settings(**TRAINED_SETTINGS):
        vectors = embeddings.encode_images([d.image for d in decoded])
    pictures = [
        Picture(
            path=spec.path,
            labels=frozenset(spec.labels),
            width=d.width,
            height=d.height,
            format=d.format,
            vector=vector,
            taken_at=timezone.make_aware(spec.date),
        )
        for spec, d, vector in zip(specs, decoded, vectors, strict=True)
    ]
    return folder, pictures


@pytest.fixture
def world_collection(db, settings, world_pictures) -> dict[int, frozenset[str]]:
    """The world in the database, searched with the trained encoders: {image id: its labels}."""
    return _insert(settings, world_pictures)


@pytest.fixture
def live_world(transactional_db, live_server, settings, world_pictures) -> dict[int, frozenset[str]]:
    """The same, committed, for the browser tests (the live server reads it from its own connection)."""
    return _insert(settings, world_pictures)


def _insert(settings, world_pictures) -> dict[int, frozenset[str]]:
    folder, pictures = world_pictures
    for name, value in TRAINED_SETTINGS.items():
        setattr(settings, name, value)
    media = Path(settings.MEDIA_ROOT) / "world"
    if not media.exists():
        shutil.copytree(folder, media)
    images = Image.objects.bulk_create(
        Image(
            sha256=hashlib.sha256(p.path.encode()).hexdigest(),
            file=f"world/{p.path}",
            path=p.path,
            width=p.width,
            height=p.height,
            format=p.format,
            taken_at=p.taken_at,
            embedding=p.vector,
            encoder=settings.CLIP_IMAGE_MODEL,
            state=Image.State.EMBEDDED,
        )
        for p in pictures
    )
    return {image.pk: picture.labels for image, picture in zip(images, pictures, strict=True)}
