"""The vocabularies shipped with the site: the default one (gallery/data/vocabulary.txt) and the generated world's.

``load`` writes them into ``Concept`` (by key: a concept already there gets the shipped names,
one edited in the admin under another key is left alone); ``manage.py label_images`` embeds them.
"""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.utils.text import slugify

from encoders import world

from .models import Concept

DEFAULT_FILE = Path(__file__).resolve().parent / "data" / "vocabulary.txt"
WORLD_PREFIX = "world-"


def read_default(path: Path = DEFAULT_FILE) -> list[tuple[str, dict]]:
    """(key, {"en": names}) for each concept line of the vocabulary file."""
    concepts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names = [name.strip() for name in line.split("|") if name.strip()]
        concepts.append((slugify(names[0]), {"en": names}))
    return concepts


def world_concepts() -> list[tuple[str, dict]]:
    """The generated world's vocabulary (encoders/world.py): its kinds, colours and backgrounds, in English.

    Keys are ``world-<label token>`` (``world-background-sky`` for ``background:sky``), so they never
    collide with the default vocabulary's ("square", "star", "tree" mean other things there).
    """
    concepts = [
        (WORLD_PREFIX + token, {"en": list(world.english_names(token))}) for token in world.KINDS + world.COLOURS
    ]
    concepts += [
        (f"{WORLD_PREFIX}background-{background}", {"en": list(world.english_names(background))})
        for background in world.BACKGROUNDS
    ]
    return concepts


def world_token(key: str) -> str | None:
    """The labels.csv token a world concept stands for (``world-background-sky`` -> ``background:sky``)."""
    if not key.startswith(WORLD_PREFIX):
        return None
    token = key.removeprefix(WORLD_PREFIX)
    return token.replace("background-", "background:", 1) if token.startswith("background-") else token


def load(concepts: list[tuple[str, dict]], *, source: str) -> tuple[int, int]:
    """Create or update the concepts by key; returns (created, updated)."""
    created = updated = 0
    with transaction.atomic():
        existing = {c.key: c for c in Concept.objects.filter(key__in=[key for key, _ in concepts])}
        new = []
        for key, names in concepts:
            concept = existing.get(key)
            if concept is None:
                new.append(Concept(key=key, names=names, source=source))
            elif concept.names != names:
                concept.names, concept.source = names, source
                concept.save(update_fields=["names", "source", "updated_at"])
                updated += 1
        Concept.objects.bulk_create(new)
        created = len(new)
    return created, updated
