"""Uploads decided by content, names that never become paths, media that is never a document, deploy checks."""

import io
import os
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image as PILImage

from gallery.models import Image
from tests.conftest import ROOT
from tests.factories import image_bytes, upload

pytestmark = pytest.mark.django_db

DISGUISED = {
    "drawing.jpg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/jpeg"),
    "page.png": (b"<!doctype html><html><body><script>alert(1)</script></body></html>", "image/png"),
    "paper.jpg": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "image/jpeg"),
    "run.gif": (b"#!/bin/sh\nrm -rf /\n", "image/gif"),
    "vector.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
}


def media_files(media_root):
    return {p for p in media_root.rglob("*") if p.is_file()}


def test_files_that_are_not_images_are_refused_whatever_their_name_or_type(admin_client, media_root):
    before = media_files(media_root)
    uploads = [upload(data, name, content_type=content_type) for name, (data, content_type) in DISGUISED.items()]
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": uploads}, follow=True)
    html = response.content.decode()
    for name in DISGUISED:
        assert f"“{name}” was not added: not an image, or in a format this server cannot read" in html
    assert Image.objects.count() == 0
    assert media_files(media_root) == before


def test_user_file_names_never_become_paths(admin_client, media_root, tmp_path):
    name = "../../../../tmp/evil.jpg"
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(31, name)]})
    assert response.status_code == 302
    image = Image.objects.get()
    assert image.file.name == f"images/{image.sha256[:2]}/{image.sha256}.jpg"
    assert (media_root / image.file.name).exists()
    assert not os.path.exists("/tmp/evil.jpg")
    # the same content under another name does not overwrite anything either
    admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(31, "other.jpg")]})
    assert Image.objects.count() == 1


def test_over_size_and_over_pixel_uploads_get_clear_messages(admin_client, settings):
    settings.UPLOAD_MAX_BYTES = 10_000
    big = upload(image_bytes(32, size=(800, 600)), "big.jpg")
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": [big]})
    assert response.status_code == 200
    assert "Larger than 9.8\xa0KB: big.jpg. Nothing was uploaded." in response.content.decode()

    settings.UPLOAD_MAX_BYTES = 50_000_000
    settings.IMAGE_MAX_PIXELS = 100_000
    wide = upload(image_bytes(33, size=(800, 600)), "wide.jpg")
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": [wide]}, follow=True)
    assert "“wide.jpg” was not added: too many pixels (the limit is IMAGE_MAX_PIXELS=100000)" in (
        response.content.decode()
    )
    assert Image.objects.count() == 0


def test_upload_needs_a_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("admin:gallery_image_add"), {"files": [upload(34, "a.jpg")]})
    assert response.status_code == 403
    assert Image.objects.count() == 0


def test_media_is_served_as_images_only_with_safe_headers(client, media_root):
    (media_root / "images").mkdir(parents=True, exist_ok=True)
    (media_root / "images" / "page.html").write_text("<script>alert(1)</script>")
    (media_root / "images" / "fake.jpg").write_text("<script>alert(1)</script>")
    buffer = io.BytesIO()
    PILImage.new("RGB", (4, 4), "red").save(buffer, "PNG")
    (media_root / "images" / "real.png").write_bytes(buffer.getvalue())

    assert client.get("/media/images/page.html").status_code == 404
    assert client.get("/media/../config/settings.py").status_code == 404
    real = client.get("/media/images/real.png")
    assert real.status_code == 200 and real["Content-Type"] == "image/png"
    fake = client.get("/media/images/fake.jpg")
    # served, but as an image that a browser will not sniff into a document or run
    assert fake["Content-Type"] == "image/jpeg"
    assert fake["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in fake["Content-Security-Policy"]


def test_check_deploy_passes_with_the_documented_production_settings():
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
        ALLOWED_HOSTS="photos.example.com",
        DEBUG="0",
        ENV_FILE=os.devnull,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="0", ENV_FILE=os.devnull)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
