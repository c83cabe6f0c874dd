"""Faults: the database going away under the site and under embed_images; storage refusing writes."""

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.urls import reverse

from gallery.models import Image
from tests.conftest import ROOT
from tests.factories import upload, write_photos

embedded_only = pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="controls the embedded server")


def _server():
    from config.embedded_postgres import server

    return server._servers[Path(settings.DATABASES["default"]["OPTIONS"]["pgdata"]).resolve()]


def stop_database() -> None:
    from pgserver._commands import pg_ctl

    server = _server()
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


def start_database() -> None:
    import pgserver

    server = _server()
    with pgserver.PostgresServer._lock:
        server.ensure_postgres_running()


@pytest.fixture
def database_outage():
    """Stop the embedded PostgreSQL inside a test; it is always started again."""
    connection.ensure_connection()
    stopped = []

    def stop():
        stop_database()
        stopped.append(True)

    def start():
        start_database()
        stopped.clear()

    yield stop, start
    if stopped:
        start_database()
    connection.close()


@embedded_only
@pytest.mark.django_db(transaction=True)
def test_site_answers_503_while_the_database_is_down_and_recovers_by_itself(client, database_outage, admin_user):
    stop, start = database_outage
    assert client.get(reverse("search:index")).status_code == 200
    stop()
    response = client.get(reverse("search:index"))
    assert response.status_code == 503
    assert "The database is not reachable right now" in response.content.decode()
    assert response["Retry-After"] == "10"
    start()
    response = client.get(reverse("search:index"))
    assert response.status_code == 200
    client.force_login(admin_user)
    assert client.get(reverse("admin:gallery_image_changelist")).status_code == 200


@embedded_only
@pytest.mark.django_db(transaction=True)
def test_embed_images_stops_clearly_when_the_database_goes_and_a_rerun_completes(tmp_path, database_outage):
    stop, start = database_outage
    paths = write_photos(tmp_path / "lib", 40, size=(480, 360))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", EMBEDDED_DB_NAME=connection.settings_dict["NAME"])
    command = [sys.executable, "manage.py", "embed_images", str(tmp_path / "lib"), "--batch-size", "4", "--no-progress"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while Image.objects.count() < 4:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    connection.close()
    stop()
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output
    assert "Database error, the run stopped (rerun to resume)" in output
    assert "Traceback" not in output
    start()

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert Image.objects.filter(state="embedded").count() == 40
    assert Image.objects.count() == 40
    import hashlib

    assert set(Image.objects.values_list("sha256", flat=True)) == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    }


class FullDiskStorage(FileSystemStorage):
    """A file system whose disk fills up after the first file written."""

    writes = 0

    def _save(self, name, content):
        type(self).writes += 1
        if type(self).writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super()._save(name, content)


@pytest.mark.django_db
def test_storage_failure_during_upload_leaves_no_row_and_no_file(admin_client, settings, media_root):
    from django.core.files.storage import storages

    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "tests.test_faults.FullDiskStorage"}}
    FullDiskStorage.writes = 0
    storages._storages.pop("default", None)
    files_before = {p for p in media_root.rglob("*") if p.is_file()}
    try:
        response = admin_client.post(
            reverse("admin:gallery_image_add"),
            {"files": [upload(77, "full.jpg")]},
            follow=True,
        )
    finally:
        storages._storages.pop("default", None)
    html = response.content.decode()
    assert "“full.jpg” was not added: could not write thumbnails/" in html
    assert "No space left on device" in html
    assert Image.objects.count() == 0
    # the image file that was written before the disk filled up was taken back
    assert {p for p in media_root.rglob("*") if p.is_file()} == files_before


@pytest.mark.django_db
def test_model_that_cannot_be_loaded_leaves_the_admin_working(admin_client, settings):
    from encoders import embeddings

    settings.CLIP_IMAGE_MODEL = "/nonexistent/model"
    settings.CLIP_TEXT_MODEL = "/nonexistent/model"
    embeddings.clear_cache()
    try:
        assert admin_client.get(reverse("admin:gallery_image_changelist")).status_code == 200
        response = admin_client.post(
            reverse("admin:gallery_image_add"),
            {"files": [upload(78, "m.jpg")]},
            follow=True,
        )
        assert "was stored but not embedded" in response.content.decode()
        image = Image.objects.get()
        assert image.state == "failed" and "CLIP_IMAGE_MODEL" in image.error
    finally:
        embeddings.clear_cache()
