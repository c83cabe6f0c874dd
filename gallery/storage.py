"""Where image and thumbnail files live in the default storage: names derived from content, never from users."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from . import formats


def image_name(sha256: str, fmt: str) -> str:
    """Where the stored copy of a file with this content, in the format Pillow calls ``fmt``, goes."""
    return f"images/{sha256[:2]}/{sha256}.{formats.stored_extension(fmt)}"


def thumbnail_name(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


class StorageWriteError(Exception):
    """The storage refused a write (disk full, permissions, an object store down)."""


def save_once(name: str, content, created: list[str] | None = None) -> str:
    """Save under exactly ``name`` unless it is already there (names come from content, so it is equal).

    Names written here are appended to ``created``, so a failed upload can take them back.
    """
    if default_storage.exists(name):
        return name
    if isinstance(content, bytes):
        content = ContentFile(content)
    try:
        saved = default_storage.save(name, content)
    except OSError as exc:
        raise StorageWriteError(f"could not write {name} to storage: {exc.strerror or exc}") from exc
    if saved != name:
        # Another process wrote the same content under the same name a moment ago: keep one copy.
        default_storage.delete(saved)
        return name
    if created is not None:
        created.append(name)
    return name


def delete_quietly(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            default_storage.delete(name)


def media_relative(path: Path) -> str | None:
    """The name of ``path`` relative to MEDIA_ROOT when it lies inside it (files there are used in place)."""
    if settings.STORAGES["default"]["BACKEND"] != "django.core.files.storage.FileSystemStorage":
        return None
    media_root = Path(settings.MEDIA_ROOT).resolve()
    try:
        relative = Path(path).resolve().relative_to(media_root)
    except ValueError:
        return None
    return relative.as_posix() if os.sep == "/" else str(relative).replace(os.sep, "/")
