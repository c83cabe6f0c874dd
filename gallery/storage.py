"""Where image and thumbnail files live in the default storage: names derived from content, never from users."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage

from . import formats


def image_name(sha256: str, fmt: str) -> str:
    """Where the stored copy of a file with this content, in the format Pillow calls ``fmt``, goes."""
    return f"images/{sha256[:2]}/{sha256}.{formats.stored_extension(fmt)}"


def thumbnail_name(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


class StorageWriteError(Exception):
    """The storage refused a write (disk full, permissions, an object store down)."""


class StorageReadError(Exception):
    """The storage could not be read (an object store down or refusing); the files themselves may be fine."""


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What the default storage raises when it fails: OSError, and botocore's errors for S3 storage."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # boto3 is only needed for S3 storage
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


STORAGE_ERRORS = _storage_errors()


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def save_once(name: str, content, created: list[str] | None = None) -> str:
    """Save under exactly ``name`` unless it is already there (names come from content, so it is equal).

    Names written here are appended to ``created``, so a failed upload can take them back.
    """
    content = ContentFile(content) if isinstance(content, bytes) else File(content)
    # Object stores serve a file with the type it was stored with, and an upload carries the type
    # the browser claimed ("text/html" for a file named .jpg, if someone likes): the name decides.
    content.content_type = formats.served_type(name) or "application/octet-stream"
    try:
        if default_storage.exists(name):
            return name
        saved = default_storage.save(name, content)
    except STORAGE_ERRORS as exc:
        raise StorageWriteError(f"could not write {name} to storage: {_reason(exc)}") from exc
    if saved != name:
        # Another process wrote the same content under the same name a moment ago: keep one copy.
        default_storage.delete(saved)
        return name
    if created is not None:
        created.append(name)
    return name


def delete_quietly(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(*STORAGE_ERRORS):
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
