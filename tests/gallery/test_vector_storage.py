import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from gallery.fields import rebuild_hnsw_index, vector_type_in_database
from gallery.models import Image

pytestmark = pytest.mark.django_db(transaction=True)


def index_definition() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'")
        return cursor.fetchone()[0]


def column_type() -> str:
    return vector_type_in_database(connection, Image)


def run(*args) -> str:
    out = io.StringIO()
    call_command("vector_storage", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(autouse=True)
def _column_restored():
    """These tests convert the test database's column (DDL outlives transactions): put it back after."""
    before = column_type()
    yield
    if column_type() != before:
        run(before)


def test_converting_to_halfvec_and_back_keeps_every_vector_and_the_index(settings):
    # A site that stores float32 vectors (made before halfvec was the default), converted and back.
    settings.VECTOR_STORAGE = "vector"
    run("vector")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2500, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    Image.objects.bulk_create(
        Image(sha256=f"{i:064x}", file=f"i/{i}.jpg", path=f"{i}.jpg", embedding=v, state="embedded", encoder="m")
        for i, v in enumerate(vectors)
    )
    assert column_type() == "vector"

    assert "Would convert" in run("halfvec", "--dry-run")
    assert column_type() == "vector"

    output = run("halfvec")
    assert "Converted gallery_image.embedding from vector to halfvec" in output
    assert "Now set VECTOR_STORAGE=halfvec" in output
    assert column_type() == "halfvec"
    assert "halfvec_cosine_ops" in index_definition() and "m='16'" in index_definition()
    stored = np.array(
        [np.asarray(e, dtype=np.float32) for e in Image.objects.order_by("id").values_list("embedding", flat=True)]
    )
    assert stored.shape == (2500, 512)
    assert np.min(np.sum(stored * vectors, axis=1)) > 0.9999  # float16 keeps direction to 1e-4

    settings.VECTOR_STORAGE = "halfvec"
    query = vectors[7]
    plan = Image.objects.nearest_to(query)[:10].explain()
    assert "Index Scan using gallery_image_embedding_hnsw" in plan
    nearest = Image.objects.nearest_to(query)[:1][0]
    assert nearest.path == "7.jpg"
    # New rows go into the halfvec column as they are.
    Image.objects.create(sha256="f" * 64, file="i/new.jpg", embedding=vectors[0], state="embedded")

    assert "from halfvec to vector" in run("vector")
    assert column_type() == "vector"
    assert "vector_cosine_ops" in index_definition()
    assert Image.objects.count() == 2501


def test_a_fresh_database_is_created_with_the_configured_storage():
    import os
    import subprocess
    import sys
    import uuid

    from tests.conftest import ROOT

    name = f"fresh_halfvec_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", EMBEDDED_DB_NAME=name, VECTOR_STORAGE="halfvec")
    try:
        for command in (["migrate", "--noinput", "-v0"], ["vector_storage"]):
            result = subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            assert result.returncode == 0, result.stderr
        assert "gallery_image.embedding is halfvec(512); VECTOR_STORAGE=halfvec" in result.stdout
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, ("96MB", "1")), ({"memory": "80MB", "workers": 0}, ("80MB", "0"))],
    ids=["settings", "given"],
)
def test_the_rebuild_builds_with_the_configured_memory_and_workers_for_its_transaction_only(settings, given, expected):
    settings.HNSW_BUILD_MEMORY, settings.HNSW_BUILD_WORKERS = "96MB", 1
    memory_before = setting("maintenance_work_mem")
    assert memory_before not in ("96MB", "80MB")
    (index,) = [i for i in Image._meta.indexes if i.name == "gallery_image_embedding_hnsw"]
    with transaction.atomic(), connection.schema_editor(atomic=False) as editor:
        rebuild_hnsw_index(editor, Image, index, **given)
        assert (setting("maintenance_work_mem"), setting("max_parallel_maintenance_workers")) == expected
    assert setting("maintenance_work_mem") == memory_before
    assert (
        f"(embedding {column_type()}_cosine_ops)" in index_definition()
        and "ef_construction='128'" in index_definition()
    )


def test_a_build_memory_that_is_not_a_size_fails_the_conversion_and_changes_nothing(settings):
    before = column_type()
    other = "vector" if before == "halfvec" else "halfvec"
    settings.HNSW_BUILD_MEMORY = "1GB'; DROP TABLE gallery_image; --"
    with pytest.raises(CommandError, match=r'nothing was changed: .*"maintenance_work_mem"'):
        run(other)
    assert column_type() == before  # the table is still there, as it was, with its index
    assert f"(embedding {before}_cosine_ops)" in index_definition()


@pytest.mark.parametrize("storage", ["vector", "halfvec"])
def test_binary_copy_loads_vectors_exactly_and_upserts(storage):
    from gallery.bulkload import images_copy

    run(storage)
    assert column_type() == storage
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    shas = [f"{i:064x}" for i in range(300)]
    paths = [f"folder/{'x' * (i % 7)}{i}.jpg" for i in range(300)]
    assert images_copy(sha256s=shas, paths=paths, vectors=vectors, encoder_id="bench") == 300
    assert images_copy(sha256s=shas[:10], paths=paths[:10], vectors=vectors[:10], encoder_id="bench") == 10
    assert Image.objects.count() == 300
    row = Image.objects.get(sha256=shas[123])
    assert row.path == paths[123] and row.state == "embedded" and row.encoder == "bench"
    tolerance = 1e-3 if storage == "halfvec" else 0
    np.testing.assert_allclose(np.asarray(row.embedding, dtype=np.float32), vectors[123], atol=tolerance)


def test_the_denser_graph_migration_rebuilds_the_index_for_the_column_it_finds():
    """A float32 table from before halfvec became the default: 0002 rebuilds its index as vector_cosine_ops."""
    import os
    import subprocess
    import sys
    import uuid

    from tests.conftest import ROOT

    name = f"graph_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", EMBEDDED_DB_NAME=name)

    def manage(*command, storage):
        result = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**env, "VECTOR_STORAGE": storage},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def indexdef():
        import psycopg

        params = {**connection.get_connection_params(), "dbname": name}
        with psycopg.connect(**params) as conn:
            (definition,) = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'"
            ).fetchone()
        return definition

    try:
        manage("migrate", "gallery", "0001", "--noinput", "-v0", storage="vector")
        assert "(embedding vector_cosine_ops)" in indexdef() and "ef_construction='64'" in indexdef()
        manage("migrate", "--noinput", "-v0", storage="halfvec")  # the new default, the old column
        assert "(embedding vector_cosine_ops)" in indexdef() and "ef_construction='128'" in indexdef()
        assert "embedding is vector(512)" in manage("vector_storage", storage="halfvec")
        manage("migrate", "gallery", "0001", "--noinput", "-v0", storage="halfvec")  # and back
        assert "(embedding vector_cosine_ops)" in indexdef() and "ef_construction='64'" in indexdef()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
