"""Ingestion benchmark: how close embed_images comes to the bare model, and how far past the articles' loop.

Generates photo-like JPEGs (default 300 at 4000x3000, quality 90), then measures with the real
CLIP ViT-B/32 architecture (random weights, `make_standin_encoders --full-size`):

  model_only  images/s of the image model's forward pass on ready tensors, same batch size
  end_to_end  images/s of embed_images over the folder: hashing, decoding, thumbnails, copying into
              storage, the model, and the database writes
  naive       images/s of the articles' loop: open one image, encode it alone, insert one row

The model is loaded before each clock starts (a long run amortises the load). Prints one JSON line.

    .venv/bin/python bench/ingest.py [--count 300] [--batch-size 32] [--workers 2] [--backend onnx-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The same threading as embed_images sets for itself, for all three measurements (see bench/README.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(ROOT))


def make_photo(args: tuple[Path, int, int, int]) -> Path:
    """A photo-like JPEG: a sky gradient, soft shapes and sensor-like noise at full resolution."""
    import numpy as np
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


def generate(folder: Path, count: int, width: int, height: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"photo_{i:05d}.jpg", i, width, height) for i in range(count)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        return list(pool.map(make_photo, jobs))


def setup_django(models: Path, media_root: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="1",
        EMBEDDED_DB_NAME="bench_ingest",
        MEDIA_ROOT=str(media_root),
        CLIP_IMAGE_MODEL=str(models / "clip"),
        CLIP_TEXT_MODEL=str(models / "text"),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def reset_collection(media_root: Path) -> None:
    from gallery.models import Image

    Image.objects.all().delete()
    shutil.rmtree(media_root, ignore_errors=True)
    media_root.mkdir(parents=True)


def measure_model_only(paths: list[Path], batch_size: int, rounds: int) -> float:
    """The vision tower's forward pass on pixel tensors made beforehand (the best any pipeline can do)."""
    import torch
    from PIL import Image

    from encoders.embeddings import get_image_encoder

    model = get_image_encoder()
    images = [Image.open(p).convert("RGB").resize((298, 224)) for p in paths[:batch_size]]
    features = model.preprocess(images)
    with torch.inference_mode():
        model.forward(dict(features))  # warm-up
        started = time.perf_counter()
        for _ in range(rounds):
            model.forward(dict(features))
        elapsed = time.perf_counter() - started
    return rounds * len(images) / elapsed


def measure_end_to_end(folder: Path, batch_size: int, workers: int, count: int) -> float:
    from io import StringIO

    from django.core.management import call_command

    from gallery.models import Image

    started = time.perf_counter()
    call_command(
        "embed_images", str(folder), batch_size=batch_size, workers=workers, no_progress=True, stdout=StringIO()
    )
    elapsed = time.perf_counter() - started
    assert Image.objects.filter(state="embedded").count() == count, "not every image was embedded"
    return count / elapsed


def measure_naive(paths: list[Path]) -> float:
    """The articles' loop: one image opened, encoded alone and inserted at a time."""
    from PIL import Image as PILImage

    from encoders.embeddings import encode_images, image_encoder_id
    from gallery.models import Image

    started = time.perf_counter()
    for i, path in enumerate(paths):
        image = PILImage.open(path).convert("RGB")
        vector = encode_images([image])[0]
        Image.objects.create(
            sha256=f"naive{i:059d}",
            file=str(path),
            path=path.name,
            embedding=vector,
            encoder=image_encoder_id(),
            state="embedded",
        )
    return len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive-count", type=int, default=60, help="the naive loop's rate is steady; a sample does")
    parser.add_argument("--models", type=Path, default=ROOT / "var" / "models-full")
    parser.add_argument("--photos", type=Path, default=ROOT / "var" / "bench" / "photos")
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8"],
        help="EMBEDDING_BACKEND for all three measurements (default: the environment's, else torch)",
    )
    args = parser.parse_args()
    if args.backend:
        os.environ["EMBEDDING_BACKEND"] = args.backend  # read by the settings at Django setup

    width, height = map(int, args.size.split("x"))
    if not (args.models / "clip" / "modules.json").exists():
        sys.exit(
            f"No full-size stand-ins in {args.models}: python manage.py make_standin_encoders --full-size {args.models}"
        )
    folder = args.photos / f"{width}x{height}"
    t0 = time.perf_counter()
    paths = generate(folder, args.count, width, height)[: args.count]
    generated_s = time.perf_counter() - t0
    media_root = Path(tempfile.mkdtemp(prefix="bench-ingest-media-"))
    setup_django(args.models, media_root)

    import torch
    from django.conf import settings

    from encoders.embeddings import get_image_encoder

    get_image_encoder()  # load (or export) before the clocks start
    model_only = measure_model_only(paths, args.batch_size, rounds=max(3, 96 // args.batch_size))
    reset_collection(media_root)
    end_to_end = measure_end_to_end(folder, args.batch_size, args.workers, len(paths))
    reset_collection(media_root)
    naive = measure_naive(paths[: args.naive_count])
    reset_collection(media_root)
    shutil.rmtree(media_root, ignore_errors=True)

    mean_bytes = sum(p.stat().st_size for p in paths) / len(paths)
    print(
        json.dumps(
            {
                "model_only_ips": round(model_only, 2),
                "end_to_end_ips": round(end_to_end, 2),
                "naive_ips": round(naive, 2),
                "e2e_over_model": round(end_to_end / model_only, 3),
                "e2e_over_naive": round(end_to_end / naive, 2),
                "backend": settings.EMBEDDING_BACKEND,
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
                "images": len(paths),
                "image_size": args.size,
                "mean_file_mb": round(mean_bytes / 1e6, 2),
                "batch_size": args.batch_size,
                "workers": args.workers,
                "naive_images": min(args.naive_count, len(paths)),
                "generate_s": round(generated_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
