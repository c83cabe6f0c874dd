"""Decoding and normalising image files: one decode gives the model input, the thumbnail and the metadata.

PIL is imported inside the functions, as django.core.files.images does, so importing this module is cheap.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone

# The model sees 224x224; decoding a 12-megapixel JPEG at full size to make that is waste.
# JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale, as long as the result stays above this size.
DRAFT_MIN_SIDE = 448

EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_DATETIME = 0x0132
EXIF_IFD = 0x8769


class UnreadableImage(ValueError):
    """The file is not an image Pillow can decode, or is refused (empty, truncated, too many pixels)."""


@dataclass
class DecodedImage:
    image: object  # PIL.Image.Image in RGB, EXIF orientation applied, possibly reduced by draft mode
    width: int  # of the original, after orientation
    height: int
    format: str
    taken_at: dt.datetime | None
    thumbnail: bytes  # JPEG


def _configure_pillow() -> None:
    from PIL import Image, ImageFile

    Image.MAX_IMAGE_PIXELS = settings.IMAGE_MAX_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def _exif_datetime(pil) -> dt.datetime | None:
    try:
        exif = pil.getexif()
        raw = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
        if not raw:
            return None
        parsed = dt.datetime.strptime(str(raw).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except Exception:  # EXIF in the wild is often broken; a missing date is not an error
        return None
    return timezone.make_aware(parsed, timezone.get_default_timezone())


def decode(source: BinaryIO | str, *, thumbnail_size: int | None = None) -> DecodedImage:
    """Decode ``source`` (a path or a binary file) for embedding; raise UnreadableImage with a reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _configure_pillow()
    thumbnail_size = thumbnail_size or settings.THUMBNAIL_SIZE
    try:
        with Image.open(source) as pil:
            fmt = pil.format or ""
            width, height = pil.size
            if width * height > settings.IMAGE_MAX_PIXELS:
                raise Image.DecompressionBombError(f"{width}x{height} pixels")
            taken_at = _exif_datetime(pil)
            orientation = pil.getexif().get(0x0112, 1)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            if fmt == "JPEG":
                target = max(DRAFT_MIN_SIDE, thumbnail_size)
                pil.draft("RGB", (target, target))
            pil.seek(0)  # first frame of an animation
            pil.load()
            rgb = _to_rgb(ImageOps.exif_transpose(pil))
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"too many pixels (limit IMAGE_MAX_PIXELS={settings.IMAGE_MAX_PIXELS}): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage("not an image, or in a format this server cannot read") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as exc:
        raise UnreadableImage(f"cannot decode: {exc.__class__.__name__}: {exc}") from exc
    if width < 1 or height < 1:
        raise UnreadableImage("the image has no pixels")
    thumb = rgb.copy()
    thumb.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=85, optimize=True)
    return DecodedImage(
        image=rgb, width=width, height=height, format=fmt, taken_at=taken_at, thumbnail=buffer.getvalue()
    )


def _to_rgb(pil):
    """RGB on white for anything with transparency; 16-bit and CMYK converted properly."""
    from PIL import Image

    if pil.mode == "RGB":
        return pil
    if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping at 255.
        pil = pil.point(lambda v: v / 256).convert("L")
    if pil.mode == "P" and "transparency" in pil.info:
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        pil = pil.convert("RGBA")
        background = Image.new("RGB", pil.size, (255, 255, 255))
        background.paste(pil, mask=pil.getchannel("A"))
        return background
    return pil.convert("RGB")
