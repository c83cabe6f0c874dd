"""What the benchmarks measure with: CLIP-like vectors, multilingual queries, photo-like JPEGs.

Everything is generated from a seed, so a run's inputs are the same on every machine.
"""

from __future__ import annotations

import io
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIMENSIONS = 512
GENERATOR = "clip-like-v2"
MEAN_COSINE = 0.69  # of an image vector to the common direction: random pairs come out near 0.48

SUBJECTS = [
    "a red bicycle",
    "ein roter Hund",
    "un chat noir",
    "una playa al atardecer",
    "雪山",
    "海滩上的狗",
    "赤い車",
    "قطة نائمة",
    "горы зимой",
    "γάτα στον καναπέ",
    "बिल्ली",
    "고양이",
    "children playing football",
    "eine Katze auf dem Sofa",
    "un pont sous la pluie",
]
PLACES = [
    "by the sea",
    "in the snow",
    "am Strand",
    "dans la rue",
    "en el bosque",
    "在城市里",
    "夜の街で",
    "في الصحراء",
    "на рынке",
    "at night",
    "under a blue sky",
    "im Nebel",
    "à la montagne",
    "",
    "in the kitchen",
    "with friends",
    "2019",
    "close-up",
]


def queries(count: int) -> list[str]:
    """``count`` distinct queries in many languages and scripts."""
    texts = []
    for i in range(count):
        subject = SUBJECTS[i % len(SUBJECTS)]
        place = PLACES[(i // len(SUBJECTS)) % len(PLACES)]
        round_ = i // (len(SUBJECTS) * len(PLACES))
        texts.append(" ".join(part for part in (subject, place, f"#{round_}" if round_ else "") if part))
    assert len(set(texts)) == count
    return texts


@dataclass
class Embeddings:
    """Unit vectors shaped like CLIP ViT-B/32 image embeddings, and how they were made."""

    vectors: np.ndarray  # (rows, 512) float32
    labels: np.ndarray  # the cluster of each row
    common: np.ndarray  # the direction every image vector leans towards
    topics: np.ndarray  # each cluster's direction within the residual space (unit)
    residual: np.ndarray  # (512, 511) basis of the space orthogonal to ``common``
    scale: np.ndarray  # the standard deviation along each residual axis (unit total variance)


def clip_like(rows: int, *, seed: int, clusters: int = 500) -> Embeddings:
    """Image-like vectors: a common direction, then clusters in a space whose variance decays like 1/rank.

    Measured on the result (20,000 rows): random pairs 0.48 cosine, pairs in one cluster 0.80,
    nearest neighbours 0.88, about 33 effective dimensions (participation ratio), as CLIP image
    embeddings have: most of the 512 dimensions carry little variance.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((DIMENSIONS, DIMENSIONS)))
    common, residual = basis[:, 0], basis[:, 1:]
    scale = np.sqrt(1.0 / np.arange(1, DIMENSIONS))
    scale /= np.linalg.norm(scale)
    centres = (rng.standard_normal((clusters, DIMENSIONS - 1)) * scale) @ residual.T
    sizes = rng.lognormal(0, 1.0, clusters)  # a few big topics, many small ones
    labels = rng.choice(clusters, size=rows, p=sizes / sizes.sum())
    spread = rng.uniform(0.5, 1.0, clusters)[labels, None]
    parts = centres[labels]
    for start in range(0, rows, 20_000):  # in slices, to keep memory small
        end = min(rows, start + 20_000)
        noise = (rng.standard_normal((end - start, DIMENSIONS - 1)) * scale) @ residual.T
        parts[start:end] += spread[start:end] * noise
    parts /= np.linalg.norm(parts, axis=1, keepdims=True)
    vectors = MEAN_COSINE * common + np.sqrt(1 - MEAN_COSINE**2) * parts
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    topics = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    return Embeddings(vectors.astype(np.float32), labels, common, topics, residual, scale)


def text_like(embeddings: Embeddings, count: int, *, seed: int) -> np.ndarray:
    """Queries shaped like CLIP text vectors against its image vectors.

    Mostly a direction of their own (CLIP's "modality gap": text and image vectors sit in two
    narrow cones), a little of the images' common direction, and a meaning: a topic's direction
    moved by noise of the same spectrum as the images'. Calibrated to CLIP ViT-B/32's figures:
    about 0.15 cosine to an unrelated image and 0.35 to the best match of 100,000.
    """
    rng = np.random.default_rng(seed)
    text = rng.standard_normal(DIMENSIONS)
    text -= (text @ embeddings.common) * embeddings.common
    text /= np.linalg.norm(text)
    topics = embeddings.topics[rng.choice(embeddings.labels, size=count)]
    noise = (rng.standard_normal((count, DIMENSIONS - 1)) * embeddings.scale) @ embeddings.residual.T
    meaning = topics + 0.5 * noise
    meaning /= np.linalg.norm(meaning, axis=1, keepdims=True)
    queries = 0.94 * text + 0.22 * embeddings.common + 0.27 * meaning
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def clustered_vectors(rows: int, dimensions: int, clusters: int, seed: int, spread: float) -> np.ndarray:
    """Unit vectors from isotropic Gaussian clusters: every direction carries the same variance (a hard case)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimensions)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((rows, dimensions), dtype=np.float32)
    step = 100_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        assignment = rng.integers(0, clusters, n)
        block = centres[assignment] + rng.standard_normal((n, dimensions)).astype(np.float32) * spread
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def make_photo(args: tuple[Path, int, int, int]) -> Path:
    """A photo-like JPEG: a sky gradient, soft shapes and sensor-like noise at full resolution."""
    from PIL import Image, ImageDraw, ImageFilter

    path, seed, width, height = args
    if path.exists():
        return path
    rng = random.Random(seed)
    small = (width // 8, height // 8)
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    sky = Image.composite(
        Image.new("RGB", small, bottom), Image.new("RGB", small, top), Image.linear_gradient("L").resize(small)
    )
    draw = ImageDraw.Draw(sky)
    for _ in range(rng.randint(15, 40)):
        x, y = rng.randrange(small[0]), rng.randrange(small[1])
        w, h = rng.randint(5, small[0] // 3), rng.randint(5, small[1] // 3)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=fill)
    image = sky.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4))).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.int16)
    noise_rng = np.random.default_rng(seed)
    tile = noise_rng.normal(0, 6, (512, 512, 3)).astype(np.int16)
    reps = (height // 512 + 2, width // 512 + 2, 1)
    ox, oy = noise_rng.integers(0, 512, 2)
    noise = np.tile(tile, reps)[oy : oy + height, ox : ox + width]
    Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


def generate_photos(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """``count`` photo-like JPEGs in ``folder`` (kept: a second run reuses them), made in parallel."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"photo_{i:05d}.jpg", i, width, height) for i in range(count)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        return list(pool.map(make_photo, jobs))


def query_image_bodies(folder: Path, count: int) -> list[Path]:
    """Multipart bodies, each with one generated JPEG (a varied picture, 640x480) in the field ``image``."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        array = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        picture = Image.fromarray(array, "RGB").resize((64, 48)).resize((640, 480))
        draw = ImageDraw.Draw(picture)
        for _ in range(6):
            x, y = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            draw.ellipse(
                (x, y, x + int(rng.integers(20, 160)), y + int(rng.integers(20, 160))),
                fill=tuple(rng.integers(0, 255, 3).tolist()),
            )
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=85)
        body = (
            b"--BENCHBOUNDARY\r\n"
            b'Content-Disposition: form-data; name="image"; filename="query.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + buffer.getvalue() + b"\r\n--BENCHBOUNDARY--\r\n"
        )
        path = folder / f"body{i}.bin"
        path.write_bytes(body)
        paths.append(path)
    return paths
