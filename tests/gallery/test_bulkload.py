"""The one bulk loader (gallery/bulkload.py); tests/gallery/test_vector_storage.py loads both column types with it."""

import numpy as np
import pytest

from gallery.bulkload import images_copy
from gallery.models import Image

pytestmark = pytest.mark.django_db


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 512)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "paths",
    [
        ["a/1.jpg", "a/2.jpg", "a/3.jpg"],  # one length: the row layout as numpy makes it
        ["", "long/folder/name/é.jpg", "b.png"],  # lengths differ, one empty: each row cut to its own
    ],
)
def test_every_row_arrives_with_its_path_and_vector(paths):
    vectors = unit_vectors(3)
    shas = [f"{i:064x}" for i in range(3)]

    assert images_copy(sha256s=shas, paths=paths, vectors=vectors, encoder_id="imported") == 3

    rows = {row.sha256: row for row in Image.objects.all()}
    assert sorted(rows) == shas
    for sha, path, vector in zip(shas, paths, vectors, strict=True):
        row = rows[sha]
        assert (row.path, row.file.name, row.encoder, row.state) == (path, path, "imported", "embedded")
        np.testing.assert_allclose(np.asarray(row.embedding, dtype=np.float32), vector, atol=1e-3)


def test_a_row_loaded_again_is_updated_not_duplicated():
    shas = [f"{i:064x}" for i in range(2)]
    images_copy(sha256s=shas, paths=["old/0.jpg", "old/1.jpg"], vectors=unit_vectors(2), encoder_id="old")

    assert images_copy(sha256s=shas[:1], paths=["new/0.jpg"], vectors=unit_vectors(1, seed=1), encoder_id="new") == 1

    assert list(Image.objects.order_by("sha256").values_list("path", "encoder")) == [
        ("new/0.jpg", "new"),
        ("old/1.jpg", "old"),
    ]


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="same length"):
        images_copy(sha256s=["0" * 64], paths=["a.jpg", "b.jpg"], vectors=unit_vectors(1), encoder_id="x")
    assert not Image.objects.exists()
