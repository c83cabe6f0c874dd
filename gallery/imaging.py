"""Decoding and normalising image files: one decode gives the encoder input, the thumbnail and the metadata.

``decode`` needs no Django settings when its limits are passed in, so worker processes can run it.
PIL is imported inside the functions, as django.core.files.images does, so importing this module is cheap.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import BinaryIO

# The CLIP encoders see 224x224. The encoder input is cut down to this shortest side here, in the
# decoding worker, so the encoder's own preprocessing has almost nothing left to do.
ENCODER_SIDE = 224

EXIF_ORIENTATION = 0x0112
EXIF_DATETIME = 0x0132
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 0x9003


class UnreadableImage(ValueError):
    """The file is not an image Pillow can decode, or is refused (empty, truncated, too many pixels)."""


@dataclass
class DecodedImage:
    image: object  # PIL.Image.Image in RGB, orientation applied, shortest side at most ENCODER_SIDE
    width: int  # of the original, after orientation
    height: int
    format: str
    taken_at: dt.datetime | None  # naive, as EXIF writes it (local time of the camera)
    thumbnail: bytes  # JPEG


def register_plugins() -> None:
    """HEIC/HEIF through pillow-heif when it is installed (AVIF is built into Pillow's wheels)."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()


def _exif_datetime(exif) -> dt.datetime | None:
    try:
        raw = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
        if not raw:
            return None
        return dt.datetime.strptime(str(raw).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except Exception:  # EXIF in the wild is often broken; a missing date is not an error
        return None


def decode(source: BinaryIO | str, *, thumbnail_size: int | None = None, max_pixels: int | None = None) -> DecodedImage:
    """Decode ``source`` (a path or a binary file) for embedding; raise UnreadableImage with a reason.

    ``thumbnail_size`` and ``max_pixels`` default to the THUMBNAIL_SIZE and IMAGE_MAX_PIXELS settings.
    """
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    if thumbnail_size is None or max_pixels is None:
        from django.conf import settings

        thumbnail_size = thumbnail_size or settings.THUMBNAIL_SIZE
        max_pixels = max_pixels or settings.IMAGE_MAX_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    register_plugins()
    try:
        with Image.open(source) as pil:
            fmt = pil.format or ""
            width, height = pil.size
            if width * height > max_pixels:
                raise Image.DecompressionBombError(f"{width}x{height} pixels")
            exif = pil.getexif()
            taken_at = _exif_datetime(exif)
            if exif.get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                width, height = height, width
            if fmt == "JPEG":
                # Reduce on load (DCT scaling): the smallest 1/2, 1/4 or 1/8 scale that still covers
                # the thumbnail's long side and the encoder's short side.
                long_side, short_side = max(thumbnail_size, ENCODER_SIDE), ENCODER_SIDE
                pil.draft("RGB", (long_side, short_side) if pil.width >= pil.height else (short_side, long_side))
            pil.load()
            rgb = _to_rgb(ImageOps.exif_transpose(pil))
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"too many pixels (the limit is IMAGE_MAX_PIXELS={max_pixels}): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage("not an image, or in a format this server cannot read") from exc
    except Exception as exc:  # decoders raise anything on broken input; all mean "cannot decode"
        raise UnreadableImage(f"cannot decode ({exc.__class__.__name__}: {exc})") from exc
    if width < 1 or height < 1:
        raise UnreadableImage("the image has no pixels")
    thumb = rgb.copy()
    thumb.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=85)
    # The encoder input comes from the (smaller) thumbnail when it is still large enough.
    source = thumb if min(thumb.size) >= ENCODER_SIDE else rgb
    encoder_input = source
    if min(source.size) > ENCODER_SIDE:
        scale = ENCODER_SIDE / min(source.size)
        size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
        encoder_input = source.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return DecodedImage(
        image=encoder_input, width=width, height=height, format=fmt, taken_at=taken_at, thumbnail=buffer.getvalue()
    )


def probe(source: BinaryIO | str, *, max_pixels: int | None = None) -> tuple[str, int, int]:
    """(format, width, height) from the file's header alone, without decoding its pixels: a quick check.

    What the background upload does before it answers (the worker decodes fully later, and marks the
    image failed with the reason when the pixels turn out broken). Raises UnreadableImage.
    """
    from PIL import Image, UnidentifiedImageError

    if max_pixels is None:
        from django.conf import settings

        max_pixels = settings.IMAGE_MAX_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    register_plugins()
    try:
        with Image.open(source) as pil:
            fmt, (width, height) = pil.format or "", pil.size
            if pil.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                width, height = height, width
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"too many pixels (the limit is IMAGE_MAX_PIXELS={max_pixels}): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage("not an image, or in a format this server cannot read") from exc
    except Exception as exc:  # a header broken in any way
        raise UnreadableImage(f"cannot decode ({exc.__class__.__name__}: {exc})") from exc
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    if width < 1 or height < 1:
        raise UnreadableImage("the image has no pixels")
    if width * height > max_pixels:
        raise UnreadableImage(f"too many pixels (the limit is IMAGE_MAX_PIXELS={max_pixels}): {width}x{height} pixels")
    return fmt, width, height


def _to_rgb(pil):
    """RGB, composited on white where there is transparency; 16-bit and CMYK converted properly."""
    from PIL import Image

    if pil.mode == "RGB":
        return pil
    if pil.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        pil = pil.convert("I").point(lambda v: v / 256).convert("L")
    elif pil.mode == "F":
        pil = pil.convert("L")
    if pil.mode == "P" and "transparency" in pil.info:
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        pil = pil.convert("RGBA")
        background = Image.new("RGB", pil.size, (255, 255, 255))
        background.paste(pil, mask=pil.getchannel("A"))
        return background
    return pil.convert("RGB")
