import numpy as np
import pytest
from django.conf import settings
from django.db import connection

from gallery.models import Image


@pytest.mark.django_db
def test_vector_extension_and_hnsw_index_exist():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() is not None
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s",
            [Image._meta.db_table, "gallery_image_embedding_hnsw"],
        )
        (indexdef,) = cursor.fetchone()
    assert "USING hnsw" in indexdef
    # halfvec_cosine_ops or vector_cosine_ops, as VECTOR_STORAGE says (the column too).
    assert f"(embedding {settings.VECTOR_STORAGE}_cosine_ops)" in indexdef
    assert "m='16'" in indexdef and "ef_construction='128'" in indexdef


def _random_unit_vectors(n: int, dim: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.django_db
def test_text_search_query_uses_the_hnsw_index():
    vectors = _random_unit_vectors(3000)
    Image.objects.bulk_create(
        Image(
            sha256=f"{i:064x}",
            file=f"images/{i}.jpg",
            path=f"{i}.jpg",
            embedding=v,
            state="embedded",
            encoder="m",
        )
        for i, v in enumerate(vectors)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE gallery_image")
    plan = Image.objects.nearest_to(_random_unit_vectors(1, seed=1)[0])[:10].explain()
    assert "Index Scan using gallery_image_embedding_hnsw" in plan, plan
