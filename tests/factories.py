"""What tests are made of, for every test package: pictures, their files, uploads and embedded rows.

Pictures are drawn with Pillow, different for each seed, so their vectors differ. ``make_images``
embeds them through the same path as ingestion (gallery.imaging.decode, then the image encoder),
so searching with one of these pictures finds it; pictures and vectors are cached per process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import mimetypes
import random
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

from encoders import embeddings
from gallery import formats
from gallery.imaging import decode
from gallery.models import Image
from gallery.storage import image_name, thumbnail_name

SIZE = (320, 240)


def aware(*args) -> dt.datetime:
    """datetime(*args) in the current time zone."""
    return timezone.make_aware(dt.datetime(*args))


def photo(seed: int, size=SIZE, mode="RGB") -> PILImage.Image:
    """A photo-like picture: a gradient sky, shapes and noise, different for each seed."""
    rng = random.Random(seed)
    w, h = size
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    gradient = PILImage.linear_gradient("L").resize((w, h))
    im = PILImage.composite(PILImage.new("RGB", size, bottom), PILImage.new("RGB", size, top), gradient)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randint(3, 9)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(10, w // 2), y0 + rng.randint(10, h // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice([draw.ellipse, draw.rectangle])
        shape([x0, y0, x1, y1], fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    noise = np.random.default_rng(seed).normal(128, rng.uniform(5, 25), (h, w, 3)).clip(0, 255).astype(np.uint8)
    im = PILImage.blend(im, PILImage.fromarray(noise, "RGB"), 0.08)
    return im.convert(mode) if mode != "RGB" else im


def image_bytes(seed: int, fmt: str = "JPEG", *, size=SIZE) -> bytes:
    """The file of ``photo(seed, size)`` in ``fmt`` (JPEG, PNG or WEBP)."""
    buffer = io.BytesIO()
    photo(seed, size).save(buffer, fmt)
    return buffer.getvalue()


def write_photos(folder: Path, count: int, *, start: int = 0, fmt: str = "JPEG", size=SIZE) -> list[Path]:
    """``count`` picture files (seeds start..start+count) in ``folder``, named photo_SEED.EXT."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(start, start + count):
        path = folder / f"photo_{seed:04d}.{formats.stored_extension(fmt)}"
        photo(seed, size).save(path, fmt)
        paths.append(path)
    return paths


def upload(content: int | bytes, name: str = "query.jpg", *, content_type: str | None = None) -> SimpleUploadedFile:
    """A file as a form posts it: the picture of seed ``content`` in the format ``name`` says, or these bytes.

    The content type follows the name unless given; the server must decide by content either way.
    """
    if isinstance(content, int):
        fmt = formats.for_file(name).name
        content = image_bytes(content, fmt)
    return SimpleUploadedFile(name, content, content_type or mimetypes.guess_type(name)[0] or "image/jpeg")


_made: dict[tuple[int, str, str], tuple[bytes, bytes, np.ndarray, int, int]] = {}


def _prepare(seeds: list[int], fmt: str) -> None:
    model = settings.CLIP_IMAGE_MODEL
    missing = [seed for seed in seeds if (seed, fmt, model) not in _made]
    if not missing:
        return
    data = [image_bytes(seed, fmt) for seed in missing]
    decoded = [decode(io.BytesIO(raw)) for raw in data]
    vectors = embeddings.encode_images([d.image for d in decoded])
    for seed, raw, d, vector in zip(missing, data, decoded, vectors, strict=True):
        _made[(seed, fmt, model)] = (raw, d.thumbnail, vector, d.width, d.height)


def make_images(
    count: int,
    *,
    start: int = 0,
    folder: str = "lib",
    fmt: str = "JPEG",
    taken: dt.datetime | None = None,
    day_step: int = 1,
) -> list[Image]:
    """``count`` embedded rows (seeds start..start+count) under ``folder``, taken a day apart from ``taken``.

    Real files and thumbnails in MEDIA_ROOT, real stand-in vectors, one INSERT.
    """
    seeds = list(range(start, start + count))
    _prepare(seeds, fmt)
    media = Path(settings.MEDIA_ROOT)
    taken = taken or aware(2024, 1, 1, 12)
    rows = []
    for i, seed in enumerate(seeds):
        raw, thumbnail, vector, width, height = _made[(seed, fmt, settings.CLIP_IMAGE_MODEL)]
        sha = hashlib.sha256(raw).hexdigest()
        names = {image_name(sha, fmt): raw, thumbnail_name(sha): thumbnail}
        for name, content in names.items():
            target = media / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
        file_name = f"photo_{seed:04d}.{formats.stored_extension(fmt)}"
        rows.append(
            Image(
                sha256=sha,
                file=image_name(sha, fmt),
                thumbnail=thumbnail_name(sha),
                path=f"{folder}/{file_name}" if folder else file_name,
                width=width,
                height=height,
                format=fmt,
                byte_size=len(raw),
                taken_at=taken + dt.timedelta(days=i * day_step),
                embedding=vector,
                encoder=embeddings.image_encoder_id(),
                state=Image.State.EMBEDDED,
            )
        )
    return Image.objects.bulk_create(rows)
