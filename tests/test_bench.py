"""The benchmarks stay runnable: each ``python -m bench.NAME`` imports and parses its flags.

Their figures take minutes to an hour (bench/README.md); this catches what rots in the meantime,
such as an import of a module that moved.
"""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

BENCHMARKS = sorted(
    path.stem for path in (ROOT / "bench").glob("*.py") if path.stem not in {"__init__", "common", "data"}
)


def test_every_benchmark_is_listed():
    assert BENCHMARKS == [
        "backends",
        "citus_search",
        "fuzz",
        "ingest",
        "labels",
        "load",
        "metrics",
        "scale",
        "search",
        "workers",
        "world_labels",
    ]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_runs_as_a_module(name):
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m bench.{name}")


@pytest.fixture
def _hnsw_index_restored():
    """The harness drops and rebuilds the test database's HNSW index (DDL outlives the test): make sure it is back."""
    yield
    from django.db import connection

    from gallery.models import Image

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'")
        if cursor.fetchone() is None:
            index = next(i for i in Image._meta.indexes if i.name == "gallery_image_embedding_hnsw")
            with connection.schema_editor() as editor:
                editor.add_index(Image, index)


@pytest.mark.django_db(transaction=True)  # VACUUM cannot run inside a transaction
def test_the_harness_loads_rows_indexes_them_and_knows_their_ids(_hnsw_index_restored):
    from bench.common import build_hnsw_index, exact_top_k, ids_by_row, load_rows, recall
    from bench.data import clip_like
    from gallery.models import Image

    data = clip_like(300, seed=0, clusters=10).vectors
    load_rows(data, path_of=lambda row: f"bench/{row}.jpg", block=128)  # three loads of the one bulk loader
    build_hnsw_index(memory="64MB", workers=0)

    ids = ids_by_row()
    assert len(ids) == 300
    assert [Image.objects.get(pk=ids[row]).path for row in (0, 128, 299)] == [
        "bench/0.jpg",
        "bench/128.jpg",
        "bench/299.jpg",
    ]
    truth = ids[exact_top_k(data, data[:20], 10)]
    assert list(truth[:, 0]) == list(ids[:20])  # each row is its own nearest
    found = [[image.pk for image in Image.objects.nearest_to(vector)[:10]] for vector in data[:20]]
    assert recall(found, truth) >= 0.9
