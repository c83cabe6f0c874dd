import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from gallery.models import Image
from tests.images import jpeg_bytes

pytestmark = pytest.mark.django_db


def upload(name, data, content_type="image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_admin_upload_creates_an_embedded_row(admin_client, media_root):
    response = admin_client.post(
        reverse("admin:gallery_image_add"), {"files": [upload("beach.jpg", jpeg_bytes(1))]}, follow=True
    )
    assert response.status_code == 200
    image = Image.objects.get()
    assert image.state == "embedded"
    assert image.path == "beach.jpg"
    assert image.embedding is not None and len(image.embedding) == 512
    assert (media_root / image.file.name).exists() and image.file.name != "beach.jpg"
    assert (media_root / image.thumbnail.name).exists()
    assert "Added 1 image" in response.content.decode()


def test_admin_upload_takes_many_files_and_reports_each_problem(admin_client):
    files = [
        upload("one.jpg", jpeg_bytes(1)),
        upload("two.jpg", jpeg_bytes(2)),
        upload("again.jpg", jpeg_bytes(1)),
        upload("notes.jpg", b"this is not an image", "image/jpeg"),
    ]
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": files}, follow=True)
    html = response.content.decode()
    assert Image.objects.count() == 2
    assert "Added 2 image" in html
    assert "“again.jpg” was not added: it is already in the collection as one.jpg" in html
    assert "“notes.jpg” was not added: not an image, or in a format this server cannot read" in html


def test_admin_changelist_shows_thumbnails(admin_client):
    admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload("x.jpg", jpeg_bytes(3))]})
    response = admin_client.get(reverse("admin:gallery_image_changelist"))
    assert response.status_code == 200
    assert '<img src="/media/thumbnails/' in response.content.decode()


def test_only_staff_reach_the_upload(client, django_user_model):
    user = django_user_model.objects.create_user("visitor", password="pw-123456789")
    client.force_login(user)
    response = client.get(reverse("admin:gallery_image_add"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
