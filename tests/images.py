"""Real image files for tests, made with Pillow: varied content so embeddings differ."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo(seed: int, size=(320, 240), mode="RGB") -> Image.Image:
    """A photo-like picture: a gradient sky, shapes and noise, different for each seed."""
    rng = random.Random(seed)
    w, h = size
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((w, h))
    im = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), gradient)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randint(3, 9)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(10, w // 2), y0 + rng.randint(10, h // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice([draw.ellipse, draw.rectangle])
        shape([x0, y0, x1, y1], fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    noise = np.random.default_rng(seed).normal(128, rng.uniform(5, 25), (h, w, 3)).clip(0, 255).astype(np.uint8)
    im = Image.blend(im, Image.fromarray(noise, "RGB"), 0.08)
    return im.convert(mode) if mode != "RGB" else im


def jpeg_bytes(seed: int, size=(320, 240), **save) -> bytes:
    buffer = io.BytesIO()
    photo(seed, size).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def write_photos(folder: Path, count: int, *, start: int = 0, fmt: str = "JPEG", size=(320, 240)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
    paths = []
    for seed in range(start, start + count):
        path = folder / f"photo_{seed:04d}.{ext}"
        photo(seed, size).save(path, fmt)
        paths.append(path)
    return paths
