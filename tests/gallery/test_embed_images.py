import numpy as np
import pytest
from django.core.management import call_command

from encoders.embeddings import encode_images
from gallery.models import Image
from search.selectors import image_search_by_vector
from tests.factories import photo, write_photos

pytestmark = pytest.mark.django_db(transaction=True)  # the command decodes in worker threads


def test_embed_images_creates_one_embedded_row_per_image(tmp_path, media_root):
    write_photos(tmp_path / "lib" / "a", 4)
    write_photos(tmp_path / "lib" / "b" / "c", 3, start=10, fmt="PNG")
    call_command("embed_images", str(tmp_path / "lib"), "--batch-size", "3", verbosity=0)

    rows = Image.objects.order_by("path")
    assert rows.count() == 7
    assert {r.state for r in rows} == {"embedded"}
    assert [r.path for r in rows][:1] == ["a/photo_0000.jpg"]
    assert "b/c/photo_0010.png" in {r.path for r in rows}
    for row in rows:
        vector = np.array(row.embedding.to_list() if hasattr(row.embedding, "to_list") else row.embedding)
        assert vector.shape == (512,)
        assert abs(np.linalg.norm(vector) - 1) < 1e-4
        assert row.width == 320 and row.height == 240
        assert len(row.sha256) == 64
        assert row.thumbnail and (media_root / row.thumbnail.name).exists()
        # Files outside MEDIA_ROOT are copied in, under a name made from their content.
        assert row.file.name.startswith("images/") and row.sha256 in row.file.name
        assert (media_root / row.file.name).exists()


def test_a_stored_image_finds_itself_first(tmp_path):
    paths = write_photos(tmp_path / "lib", 12)
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)
    for index in (0, 5, 11):
        results = image_search_by_vector(encode_images([photo(index)])[0], limit=3).results
        assert results[0].path == paths[index].name
        assert results[0].score > 0.99
        assert results[0].score >= results[1].score >= results[2].score
