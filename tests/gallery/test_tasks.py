"""Background embedding against a real redis-server and real Celery worker processes.

One redis-server per module, on a unix socket in a temporary folder; workers are ``celery -A config
worker`` subprocesses on the test database (EMBEDDED_DB_NAME / DATABASE_URL), decoding with
tests.gallery.troublesome.decode_or_die, which ends its process on a file marked inside. Without
redis-server these tests skip, saying how to get it; with CI set they fail instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from config import celery_app
from gallery import background
from gallery.models import Image
from tests.conftest import ROOT
from tests.factories import photo, upload, write_photos
from tests.gallery.troublesome import HANG_MARKER, KILL_MARKER
from tests.servers import redis_server

pytestmark = pytest.mark.django_db(transaction=True)

# Short, so that a vanished worker's batch comes back within seconds (production: 600, settings.py).
VISIBILITY_TIMEOUT = 6


def wait_for(predicate, *, seconds: float, what: str, logs: list[Path] = ()) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
            pytest.fail(f"{what}: not within {seconds:g} s\n{tails}")
        time.sleep(0.2)


# redis-server and workers


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis"), reason="these tests need redis-server") as socket:
        yield f"redis+socket://{socket}"


def forget_connections() -> None:
    """Drop the app's pooled broker connections (a process's broker never changes, but tests change it)."""
    celery_app.close()
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def celery_broker(url: str):
    """This process sends to ``url``: the settings, and the already configured Celery app."""
    before = celery_app.conf.broker_url
    forget_connections()
    celery_app.conf.broker_url = url
    try:
        with override_settings(CELERY_BROKER_URL=url):
            yield
    finally:
        forget_connections()
        celery_app.conf.broker_url = before


@pytest.fixture(scope="module")
def broker(redis_url):
    with celery_broker(redis_url):
        yield redis_url


def worker_env(broker_url: str, **extra: str) -> dict:
    env = dict(os.environ)
    name = connection.settings_dict["NAME"]  # the test database
    if env.get("DATABASE_URL"):
        parts = urllib.parse.urlsplit(env["DATABASE_URL"])
        env["DATABASE_URL"] = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        EMBEDDED_DB_NAME=name,
        CELERY_BROKER_URL=broker_url,
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        TEST_EMBED_DECODE_FUNCTION="tests.gallery.troublesome.decode_or_die",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Worker:
    """``celery -A config worker`` in its own process group (so that SIGKILL takes the pool with it)."""

    count = 0

    def __init__(self, broker_url: str, log_folder: Path, *, queue: str = "embed", **env: str):
        Worker.count += 1
        self.log = log_folder / f"worker-{Worker.count}.log"
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-c", "1"]
        command += ["-n", f"test{Worker.count}@%h", "-l", "info", "--without-gossip", "--without-mingle"]
        command += ["--without-heartbeat"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=worker_env(broker_url, **env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: "ready." in self.log.read_text() or self.process.poll() is not None,
            seconds=120,
            what="the worker started",
            logs=[self.log],
        )
        assert self.process.poll() is None, self.log.read_text()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def worker(broker, django_db_setup, tmp_path_factory):
    started = Worker(broker, tmp_path_factory.mktemp("workers"))
    yield started
    started.stop()


def all_embedded(ids) -> bool:
    return Image.objects.filter(pk__in=ids, state="embedded").count() == len(ids)


# Without a broker


def test_queue_needs_a_broker(tmp_path):
    write_photos(tmp_path, 1)
    with override_settings(CELERY_BROKER_URL=""), pytest.raises(CommandError, match="CELERY_BROKER_URL"):
        call_command("embed_images", str(tmp_path), "--queue", verbosity=0)
    assert not background.enabled()
    assert not Image.objects.exists()


# With a broker


def test_upload_answers_with_pending_rows_that_a_worker_then_embeds(broker, admin_client, request, media_root):
    from encoders import embeddings
    from gallery.imaging import decode

    files = [upload(seed, f"p{seed}.jpg") for seed in range(5)]
    files += [upload(b"not an image", "notes.jpg"), upload(1, "again.jpg")]
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": files}, follow=True)
    html = response.content.decode()
    assert "Added 5 image(s); the workers are embedding them" in html
    assert "“notes.jpg” was not added: not an image" in html
    assert "“again.jpg” was not added: it is already in the collection as p1.jpg" in html
    # No worker runs yet: the answer came before any embedding, and the work waits in the queue.
    images = list(Image.objects.order_by("path"))
    assert [image.state for image in images] == ["pending"] * 5
    assert all(image.embedding is None and not image.thumbnail for image in images)
    assert all((media_root / image.file.name).exists() and image.width == 320 for image in images)
    progress = admin_client.get("/api/embedding").json()
    assert (progress["pending"], progress["embedded"], progress["queue"], progress["queued_tasks"]) == (
        5,
        0,
        "embed",
        1,
    )

    running = request.getfixturevalue("worker")
    ids = [image.pk for image in images]
    wait_for(lambda: all_embedded(ids), seconds=120, what="the upload embedded", logs=[running.log])
    image = Image.objects.get(path="p3.jpg")
    assert image.encoder == embeddings.image_encoder_id() and image.attempts == 0 and image.error == ""
    assert (media_root / image.thumbnail.name).exists()
    # The worker's vector is the one this process makes of the same file.
    expected = embeddings.encode_images(
        [decode(io.BytesIO(image_bytes_of(image)), thumbnail_size=384, max_pixels=10**8).image]
    )[0]
    assert float(np.dot(np.asarray(image.embedding, dtype=np.float32), expected)) > 0.99

    changelist = admin_client.get(reverse("admin:gallery_image_changelist")).content.decode()
    assert 'data-count="embedded">5<' in changelist and 'data-count="pending">0<' in changelist
    progress = admin_client.get("/api/embedding").json()
    assert (progress["pending"], progress["embedded"], progress["failed"]) == (0, 5, 0)
    assert progress["rate"] > 0 and progress["background"] is True


def image_bytes_of(image: Image) -> bytes:
    with image.file.open("rb") as fh:
        return fh.read()


def test_progress_is_for_staff_only(client, django_user_model):
    assert client.get("/api/embedding").status_code == 401
    client.force_login(django_user_model.objects.create_user("visitor", password="pw-123456789"))
    response = client.get("/api/embedding")
    assert response.status_code == 403 and response.json() == {"error": "Staff only."}


def test_embed_images_queue_copies_files_into_storage_and_workers_embed_them(worker, tmp_path, media_root):
    paths = write_photos(tmp_path / "lib", 8, start=100)
    (tmp_path / "lib" / "README.txt").write_text("not a picture")
    out = io.StringIO()
    call_command(
        "embed_images", str(tmp_path / "lib"), "--queue", "--batch-size", "3", stdout=out, stderr=io.StringIO()
    )
    assert "Queued 8 in 3 task(s) on queue embed, unchanged 0, moved 0, not an image 1, failed 0" in out.getvalue()
    images = list(Image.objects.all())
    assert len(images) == 8
    # Copied into the storage: a worker on another machine reads it there, not from this folder.
    assert all(image.file.name.startswith("images/") and (media_root / image.file.name).exists() for image in images)
    ids = [image.pk for image in images]
    wait_for(lambda: all_embedded(ids), seconds=120, what="the folder embedded", logs=[worker.log])
    assert sorted(Image.objects.values_list("path", flat=True)) == sorted(p.name for p in paths)

    again = io.StringIO()
    call_command("embed_images", str(tmp_path / "lib"), "--queue", stdout=again, stderr=io.StringIO())
    assert "Queued 0 in 0 task(s) on queue embed, unchanged 8" in again.getvalue()


def test_a_file_that_kills_its_worker_twice_is_marked_failed_and_the_rest_embedded(worker, admin_client):
    poison = io.BytesIO()
    photo(7).save(poison, "JPEG", comment=KILL_MARKER)
    files = [upload(seed, f"ok{seed}.jpg") for seed in (1, 2, 3)]
    files.insert(2, upload(poison.getvalue(), "poison.jpg"))
    admin_client.post(reverse("admin:gallery_image_add"), {"files": files})
    ids = list(Image.objects.values_list("pk", flat=True))
    assert len(ids) == 4

    def settled():
        return not Image.objects.filter(state="pending").exists()

    wait_for(settled, seconds=180, what="the batch settled", logs=[worker.log])
    failed = Image.objects.get(path="poison.jpg")
    assert failed.state == "failed" and failed.error == background.DIED_TWICE and failed.attempts == 2
    assert Image.objects.filter(state="embedded").count() == 3
    log = worker.log.read_text()
    assert log.count("exited prematurely") >= 2, log[-3000:]  # it really killed the pool process twice
    assert worker.process.poll() is None  # and the worker lives on, with a fresh pool process
    progress = admin_client.get("/api/embedding").json()
    assert progress["failed"] == 1 and progress["failures"][0]["error"] == background.DIED_TWICE


def test_a_file_that_hangs_its_worker_is_stopped_by_the_time_limit_and_marked_failed(broker, tmp_path, admin_client):
    # Its own worker and queue, with a short time limit (the module's worker keeps the default).
    logs = tmp_path / "logs"
    logs.mkdir()
    hanging = Worker(broker, logs, queue="slowqueue", EMBED_TASK_TIME_LIMIT="10", CELERY_VISIBILITY_TIMEOUT="60")
    try:
        stuck = io.BytesIO()
        photo(8).save(stuck, "JPEG", comment=HANG_MARKER)
        # Alone: the time limit is per batch, and a batch-mate's first task in a fresh pool process
        # (loading the encoder) on a busy machine could run past these short 10 s too.
        files = [upload(stuck.getvalue(), "stuck.jpg")]
        with override_settings(EMBED_QUEUE="slowqueue"):
            admin_client.post(reverse("admin:gallery_image_add"), {"files": files})
        wait_for(
            lambda: not Image.objects.filter(state="pending").exists(),
            seconds=180,
            what="the batch settled",
            logs=[hanging.log],
        )
        log = hanging.log.read_text()
    finally:
        hanging.stop()
    failed = Image.objects.get(path="stuck.jpg")
    assert failed.state == "failed" and failed.error == background.DIED_TWICE and failed.attempts == 2
    assert log.count("Hard time limit (10") >= 2, log[-3000:]


def test_sigkill_a_worker_mid_batch_and_another_redoes_it(broker, tmp_path):
    """The gpu queue by name; the killed worker's batch comes back after the visibility timeout."""
    logs = tmp_path / "logs"
    logs.mkdir()
    paths = write_photos(tmp_path / "lib", 12, start=200)
    # 12 files at 0.4 s each: the first worker is killed while it decodes them.
    first = Worker(broker, logs, queue="gpu", TEST_DECODE_SECONDS="0.4")
    second = None
    try:
        out = io.StringIO()
        call_command("embed_images", str(tmp_path / "lib"), "--queue", "gpu", "--batch-size", "12", stdout=out)
        assert "Queued 12 in 1 task(s) on queue gpu" in out.getvalue()
        wait_for(
            lambda: Image.objects.filter(attempts=1).count() == 12,
            seconds=120,
            what="the batch started",
            logs=[first.log],
        )
        time.sleep(1)
        first.kill()
        assert not Image.objects.filter(state="embedded").exists(), "the kill came too late to test anything"

        second = Worker(broker, logs, queue="gpu")
        wait_for(
            lambda: Image.objects.filter(state="embedded").count() == 12,
            seconds=120,
            what="the batch redone",
            logs=[first.log, second.log],
        )
    finally:
        first.kill()
        if second is not None:
            second.stop()
    assert Image.objects.count() == 12
    assert sorted(Image.objects.values_list("path", flat=True)) == sorted(p.name for p in paths)
    # Each image records the one worker that died on it; none was marked failed for it.
    assert set(Image.objects.values_list("attempts", flat=True)) == {1}


def test_a_broker_that_is_down_keeps_the_upload_pending_and_says_so(admin_client, tmp_path):
    with celery_broker(f"redis+socket://{tmp_path / 'nobody-here.sock'}"):
        started = time.monotonic()
        response = admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(4, "d.jpg")]}, follow=True)
        assert time.monotonic() - started < 30
    assert response.status_code == 200
    html = response.content.decode()
    assert "Added 1 image(s), but the task queue (embed) could not be reached" in html, html[
        html.find("messagelist") :
    ][:800]
    assert Image.objects.get().state == "pending"


def test_check_names_a_broker_that_is_not_redis():
    from gallery.checks import check_gallery_settings

    with override_settings(CELERY_BROKER_URL="amqp://guest@localhost//"):
        assert [error.id for error in check_gallery_settings()] == ["gallery.E010"]
    with override_settings(CELERY_BROKER_URL="redis://localhost:6379/0", EMBED_QUEUE=" "):
        assert [error.id for error in check_gallery_settings()] == ["gallery.E011"]
    with override_settings(CELERY_BROKER_URL="redis://localhost:6379/0", CELERY_TASK_TIME_LIMIT=900):
        assert [error.id for error in check_gallery_settings()] == ["gallery.E012"]
    with override_settings(CELERY_BROKER_URL=""):
        assert check_gallery_settings() == []
