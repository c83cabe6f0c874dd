"""Where image and thumbnail files live in the default storage: names derived from content, never from users."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "TIFF": "tif",
    "BMP": "bmp",
    "HEIF": "heic",
    "AVIF": "avif",
    "MPO": "jpg",
}


def image_name(sha256: str, fmt: str) -> str:
    ext = EXTENSIONS.get(fmt.upper(), (fmt or "bin").lower())
    return f"images/{sha256[:2]}/{sha256}.{ext}"


def thumbnail_name(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


def save_once(name: str, content: bytes | ContentFile | object) -> str:
    """Save under exactly ``name`` unless it is already there (content-addressed, so equal)."""
    if default_storage.exists(name):
        return name
    if isinstance(content, bytes):
        content = ContentFile(content)
    saved = default_storage.save(name, content)
    return saved


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
