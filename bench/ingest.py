"""Ingestion benchmark: how close embed_images comes to the bare model, and how far past the articles' loop.

Generates photo-like JPEGs (default 300 at 4000x3000, quality 90; bench/data.py), then measures
with the real CLIP ViT-B/32 architecture (random weights, `make_standin_encoders --full-size`):

  model_only  images/s of the image encoder's forward pass on ready tensors, same batch size
  end_to_end  images/s of embed_images over the folder: hashing, decoding, thumbnails, copying into
              storage, the encoder, and the database writes
  naive       images/s of the articles' loop: open one image, encode it alone, insert one row

The encoder is loaded before each clock starts (a long run amortises the load). Prints one JSON line.

    .venv/bin/python -m bench.ingest [--count 300] [--batch-size 32] [--workers 2] [--backend onnx-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import FULL_SIZE_ENCODERS, ROOT, argument_parser, full_size_encoders, setup_django
from bench.data import generate_photos

# The same threading as embed_images sets for itself, for all three measurements (see bench/README.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


def measure(paths: list[Path], folder: Path, media_root: Path, args: argparse.Namespace) -> dict[str, float]:
    """The three rates, each over an empty collection."""
    from encoders.embeddings import get_image_encoder

    get_image_encoder()  # load (or export) before the clocks start
    model_only = measure_model_only(paths, args.batch_size, rounds=max(3, 96 // args.batch_size))
    reset_collection(media_root)
    end_to_end = measure_end_to_end(folder, args.batch_size, args.workers, len(paths))
    reset_collection(media_root)
    naive = measure_naive(paths[: args.naive_count])
    reset_collection(media_root)
    return {
        "model_only_ips": round(model_only, 2),
        "end_to_end_ips": round(end_to_end, 2),
        "naive_ips": round(naive, 2),
        "e2e_over_model": round(end_to_end / model_only, 3),
        "e2e_over_naive": round(end_to_end / naive, 2),
    }


def arguments() -> argparse.Namespace:
    parser = argument_parser(__doc__, __spec__.name)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive-count", type=int, default=60, help="the naive loop's rate is steady; a sample does")
    parser.add_argument("--models", type=Path, default=FULL_SIZE_ENCODERS, help="the full-size stand-in encoders")
    parser.add_argument(
        "--photos", type=Path, default=ROOT / "var" / "bench" / "photos", help="kept here, a folder per size and count"
    )
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8"],
        help="EMBEDDING_BACKEND for all three measurements (default: the environment's, else torch)",
    )
    return parser.parse_args()


def run_facts(paths: list[Path], args: argparse.Namespace) -> dict:
    """What the rates were measured with."""
    import torch
    from django.conf import settings

    return {
        "backend": settings.EMBEDDING_BACKEND,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "images": len(paths),
        "image_size": args.size,
        "mean_file_mb": round(sum(p.stat().st_size for p in paths) / len(paths) / 1e6, 2),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "naive_images": min(args.naive_count, len(paths)),
    }


def main() -> None:
    args = arguments()
    encoders = full_size_encoders(args.models)
    width, height = map(int, args.size.split("x"))
    # A folder per count: embed_images takes the whole folder, which must hold just these photos.
    folder = args.photos / f"{width}x{height}-{args.count}"
    started = time.perf_counter()
    paths = generate_photos(folder, args.count, width, height)
    generate_s = round(time.perf_counter() - started, 1)
    media_root = Path(tempfile.mkdtemp(prefix="bench-ingest-media-"))
    backend = {"EMBEDDING_BACKEND": args.backend} if args.backend else {}
    setup_django(
        migrate=True, DEBUG="1", EMBEDDED_DB_NAME="bench_ingest", MEDIA_ROOT=str(media_root), **encoders, **backend
    )
    try:
        rates = measure(paths, folder, media_root, args)
    finally:
        shutil.rmtree(media_root, ignore_errors=True)
    print(json.dumps(rates | run_facts(paths, args) | {"generate_s": generate_s}))


if __name__ == "__main__":
    main()
