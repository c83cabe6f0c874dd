import pytest
from django.urls import reverse

from gallery.models import Image
from tests.factories import image_bytes, upload
from tests.markup import select

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_upload_creates_an_embedded_row(admin_client, media_root):
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(1, "beach.jpg")]}, follow=True)
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
        upload(1, "one.jpg"),
        upload(2, "two.jpg"),
        upload(1, "again.jpg"),
        upload(b"this is not an image", "notes.jpg"),
    ]
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": files}, follow=True)
    html = response.content.decode()
    assert Image.objects.count() == 2
    assert "Added 2 image" in html
    assert "“again.jpg” was not added: it is already in the collection as one.jpg" in html
    assert "“notes.jpg” was not added: not an image, or in a format this server cannot read" in html


def test_admin_changelist_shows_thumbnails(admin_client):
    admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(3, "x.jpg")]})
    response = admin_client.get(reverse("admin:gallery_image_changelist"))
    assert response.status_code == 200
    assert any(img.get("src").startswith("/media/thumbnails/") for img in select(response.content.decode(), "img[src]"))


def test_only_staff_reach_the_upload(client, django_user_model):
    user = django_user_model.objects.create_user("visitor", password="pw-123456789")
    client.force_login(user)
    response = client.get(reverse("admin:gallery_image_add"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_failed_images_show_their_reason_and_filters_work(admin_client, tmp_path):
    from django.core.management import call_command

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "broken.jpg").write_bytes(image_bytes(5)[:300])
    (tmp_path / "lib" / "fine.jpg").write_bytes(image_bytes(6))
    call_command("embed_images", str(tmp_path / "lib"), workers=1, verbosity=0)
    changelist = reverse("admin:gallery_image_changelist")
    failed = admin_client.get(changelist, {"state__exact": "failed"}).content.decode()
    assert "broken.jpg" in failed and "fine.jpg" not in failed
    assert "truncated" in failed or "cannot decode" in failed
    found = admin_client.get(changelist, {"q": "fine"}).content.decode()
    assert "fine.jpg" in found and "broken.jpg" not in found


def test_reembed_action_writes_vectors_of_the_current_model(admin_client):
    from encoders import embeddings

    admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(8, "r.jpg")]})
    image = Image.objects.get()
    Image.objects.filter(pk=image.pk).update(encoder="old-model", embedding=[0.0] * 511 + [1.0])
    response = admin_client.post(
        reverse("admin:gallery_image_changelist"),
        {"action": "reembed", "_selected_action": [image.pk]},
        follow=True,
    )
    assert "Re-embedded 1 image(s); 0 failed." in response.content.decode()
    image.refresh_from_db()
    assert image.encoder == embeddings.image_encoder_id()
    assert image.embedding[511] != 1.0


def test_without_replicas_an_upload_sets_no_read_your_writes_cookie(admin_client):
    # core.middleware.ReadYourWritesMiddleware does nothing unless DATABASE_REPLICA_URLS is set.
    response = admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(4, "y.jpg")]})
    assert response.status_code == 302
    assert "read_primary" not in response.cookies
