"""Background embedding benchmark: images/s of Celery workers against in-process embed_images, and the upload's answer.

Generates photo-like JPEGs (bench/data.py), starts a private redis-server, and measures with the
full-size stand-in encoders (`make_standin_encoders --full-size`):

  in_process_ips   embed_images over the folder, in this process (as without a broker)
  worker_c1_ips    embed_images --queue, then one `celery -A config worker -c 1` embeds: from the
                   command's start until the last row is embedded
  worker_c2_ips    the same with `-c 2` (two worker processes, OMP_NUM_THREADS=cores/2 each)
  upload_answer_s  the admin upload of --upload-count photos with a broker set, from the request to
                   its answer (Django's test client: the multipart body is encoded beforehand, so this
                   is the server's time, not the network's; the upload form is opened first, as a
                   person does, so URLs and views are loaded); no worker runs meanwhile

Every worker embeds a warm-up batch before its clock starts (the encoder loads in its first task),
as bench/ingest.py loads the encoder before its clock. Prints one JSON line.

    .venv/bin/python -m bench.workers [--count 200] [--size 2000x1500] [--upload-count 200]
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import FULL_SIZE_ENCODERS, ROOT, argument_parser, full_size_encoders, setup_django
from bench.data import generate_photos

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
QUEUE = "bench"


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    import redis

    socket = folder / "redis.sock"
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            if redis.Redis(unix_socket_path=str(socket)).ping():
                return process, f"redis+socket://{socket}"
        except (redis.ConnectionError, FileNotFoundError):
            if time.monotonic() > deadline or process.poll() is not None:
                sys.exit("redis-server did not start")
            time.sleep(0.05)


def reset_collection(media_root: Path) -> None:
    from gallery.models import Image

    Image.objects.all().delete()
    for child in media_root.iterdir():
        shutil.rmtree(child, ignore_errors=True)


def wait_embedded(count: int, *, seconds: float = 3600) -> None:
    from gallery.models import Image

    deadline = time.monotonic() + seconds
    while Image.objects.filter(state="embedded").count() < count:
        if Image.objects.filter(state="failed").exists():
            sys.exit(f"a worker failed an image: {Image.objects.filter(state='failed').first().error}")
        if time.monotonic() > deadline:
            sys.exit("the workers did not finish")
        time.sleep(0.1)


def embed_command(folder: Path, batch_size: int, *extra: str) -> None:
    from django.core.management import call_command

    call_command(
        "embed_images",
        str(folder),
        "--batch-size",
        str(batch_size),
        *extra,
        "--no-progress",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )


def measure_in_process(folder: Path, count: int, batch_size: int) -> float:
    from encoders.embeddings import get_image_encoder

    get_image_encoder()  # loaded before the clock, as the workers are warmed up
    started = time.perf_counter()
    embed_command(folder, batch_size)
    elapsed = time.perf_counter() - started
    wait_embedded(count, seconds=0)
    return count / elapsed


def measure_worker(
    folder: Path, warmup: Path, count: int, batch_size: int, concurrency: int, media_root: Path, broker: str, log: Path
) -> float:
    env = dict(os.environ, CELERY_BROKER_URL=broker, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // concurrency)))
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "-c", str(concurrency)]
    command += ["-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        # Warm-up: one small task per worker process loads the encoder in each.
        reset_collection(media_root)
        embed_command(warmup, 2, "--queue", QUEUE)
        wait_embedded(len(list(warmup.iterdir())), seconds=600)
        reset_collection(media_root)
        started = time.perf_counter()
        embed_command(folder, batch_size, "--queue", QUEUE)
        wait_embedded(count)
        return count / (time.perf_counter() - started)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def measure_upload(paths: list[Path]) -> float:
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.test.client import encode_multipart
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from gallery.models import Image

    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    files = [SimpleUploadedFile(p.name, p.read_bytes(), "image/jpeg") for p in paths]
    body = encode_multipart("BenchBoundary", {"files": files})
    # A running server has its URLs and views loaded: the upload form first, as a person opens it.
    assert client.get(reverse("admin:gallery_image_add")).status_code == 200
    started = time.perf_counter()
    response = client.post(
        reverse("admin:gallery_image_add"), body, content_type="multipart/form-data; boundary=BenchBoundary"
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 302, response.status_code
    assert Image.objects.filter(state="pending").count() == len(paths), "not every photo was stored"
    return elapsed


def main() -> None:
    parser = argument_parser(__doc__, __spec__.name)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", default="2000x1500")
    parser.add_argument("--upload-count", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", type=Path, default=FULL_SIZE_ENCODERS, help="the full-size stand-in encoders")
    parser.add_argument("--photos", type=Path, default=ROOT / "var" / "bench" / "photos")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    encoders = full_size_encoders(args.models)
    width, height = map(int, args.size.split("x"))
    folder = args.photos / f"{width}x{height}-{args.count}"
    paths = generate_photos(folder, args.count, width, height)
    warmup = args.photos / "warmup-640x480-4"
    generate_photos(warmup, 4, 640, 480)
    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    media_root = work / "media"
    media_root.mkdir()
    redis, broker = start_redis(work)
    try:
        environment = dict(DEBUG="1", EMBEDDED_DB_NAME="bench_workers", MEDIA_ROOT=str(media_root), **encoders)
        os.environ.update(environment)  # the workers inherit them
        setup_django(migrate=True, **environment)
        from django.conf import settings
        from django.test.utils import override_settings

        reset_collection(media_root)
        in_process = measure_in_process(folder, len(paths), args.batch_size)
        # From here on with the broker, in this process (the enqueuing side) and the workers.
        os.environ["CELERY_BROKER_URL"] = broker
        from config import celery_app

        celery_app.conf.broker_url = broker
        with override_settings(CELERY_BROKER_URL=broker, EMBED_QUEUE=QUEUE):
            rates = {
                f"worker_c{c}_ips": measure_worker(
                    folder, warmup, len(paths), args.batch_size, c, media_root, broker, work / f"worker-c{c}.log"
                )
                for c in (1, 2)
            }
            reset_collection(media_root)
            upload_paths = (paths * (args.upload_count // len(paths) + 1))[: args.upload_count]
            if len(set(upload_paths)) < len(upload_paths):
                sys.exit("--upload-count is larger than --count: the photos must differ")
            answer = measure_upload(upload_paths)
            reset_collection(media_root)
        print(
            json.dumps(
                {
                    "in_process_ips": round(in_process, 2),
                    **{name: round(rate, 2) for name, rate in rates.items()},
                    "c2_over_c1": round(rates["worker_c2_ips"] / rates["worker_c1_ips"], 2),
                    "upload_answer_s": round(answer, 2),
                    "upload_count": args.upload_count,
                    "images": len(paths),
                    "image_size": args.size,
                    "mean_file_mb": round(sum(p.stat().st_size for p in paths) / len(paths) / 1e6, 2),
                    "batch_size": args.batch_size,
                    "cpu_count": os.cpu_count(),
                    # The machine is shared: a load well above 0 at the start means other work competed.
                    "loadavg_1min_at_start": load_at_start,
                    "backend": settings.EMBEDDING_BACKEND,
                }
            )
        )
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
