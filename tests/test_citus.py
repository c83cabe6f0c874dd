"""Citus readiness: the search settings as SET LOCAL, and (where Citus is there) distribute + ingest + search.

Citus is in no package registry this project can install from, so the tests that need it skip
where the database has no ``citus`` extension preloaded, on CI too (set REQUIRE_CITUS=1 to make
its absence a failure, on a machine built with it). docs/scaling.md, "Running the Citus test",
builds Citus from source and runs this module against a coordinator (DATABASE_URL) and, with
CITUS_WORKER_URL (a second server with citus preloaded), a real worker node holding shards. The
statement form the search sends on Citus is checked on plain PostgreSQL below, every run: the same
values, for the transaction only.
"""

import io
import os
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from psycopg import sql

from gallery.management.commands.citus_distribute import citus_available
from gallery.models import Image
from gallery.services import images_upsert
from search import selectors

NAMES = ("enable_indexscan", "enable_sort", "jit", "hnsw.ef_search", "hnsw.iterative_scan")


def _settings(cursor) -> dict[str, str]:
    cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in NAMES), list(NAMES))
    return dict(zip(NAMES, cursor.fetchone(), strict=True))


@pytest.mark.parametrize("citus", [False, True])
@pytest.mark.parametrize(("depth", "exact"), [(11, False), (600, False), (5000, True)])
def test_both_statement_forms_set_the_same_values_for_the_transaction_only(transactional_db, citus, depth, exact):
    expected = selectors.scan_settings(depth=depth, exact=exact)
    assert expected["hnsw.ef_search"] == str(min(max(300, depth), 1000))
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")  # hnsw.* are pgvector's
        cursor.execute("LOAD 'vector'")
        outside = _settings(cursor)
        with transaction.atomic():
            for statement, params in selectors.scan_settings_sql(depth=depth, exact=exact, citus=citus):
                cursor.execute(statement, params)
            assert _settings(cursor) == expected
        assert _settings(cursor) == outside


def test_citus_form_is_set_local_with_propagation():
    statements = [sql for sql, _ in selectors.scan_settings_sql(depth=10, exact=False, citus=True)]
    assert statements[0] == "SET LOCAL citus.propagate_set_commands = 'local'"
    assert "SET LOCAL hnsw.ef_search = '300'" in statements
    assert not any("set_config" in sql for sql in statements)


def test_plain_postgresql_is_not_citus_and_distribute_refuses(db):
    assert selectors.on_citus(connection) is False
    with connection.cursor() as cursor:
        usable, _ = citus_available(cursor)
    if usable:
        pytest.skip("this PostgreSQL has Citus")
    with pytest.raises(CommandError, match=r"Cannot distribute: .*citus"):
        call_command("citus_distribute")


def _citus_or_skip():
    with connection.cursor() as cursor:
        usable, why = citus_available(cursor)
    if not usable:
        if os.environ.get("REQUIRE_CITUS"):
            pytest.fail(f"REQUIRE_CITUS is set but {why}")
        pytest.skip(f"needs Citus: {why}")


def _worker() -> dict | None:
    """CITUS_WORKER_URL (a second PostgreSQL with citus preloaded, as the coordinator reaches it), parsed."""
    url = os.environ.get("CITUS_WORKER_URL", "")
    if not url:
        return None
    parts = urlsplit(url)
    return {"host": parts.hostname or "localhost", "port": parts.port or 5432, "user": parts.username or "postgres"}


@pytest.fixture
def citus(transactional_db):
    """The test database on Citus: the coordinator alone, or with CITUS_WORKER_URL's server as its worker."""
    _citus_or_skip()
    worker = _worker()
    if worker:
        # The worker needs a database of the same name with citus in it; the coordinator adds it.
        name = connection.settings_dict["NAME"]
        with psycopg.connect(**worker, dbname="postgres", autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with psycopg.connect(**worker, dbname=name, autocommit=True, connect_timeout=5) as database:
            database.execute("CREATE EXTENSION citus")
        coordinator = connection.settings_dict
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS citus")
            cursor.execute(
                "SELECT citus_set_coordinator_host(%s, %s)",
                [coordinator["HOST"] or "localhost", int(coordinator["PORT"] or 5432)],
            )
            cursor.execute("SELECT citus_add_node(%s, %s)", [worker["host"], worker["port"]])
    yield worker
    # Back to plain tables for the tests after this one. undistribute_table() refuses a table with
    # an identity column (Django's id), so the gallery tables are dropped and made again instead.
    call_command("migrate", "gallery", "zero", verbosity=0)
    call_command("migrate", "gallery", verbosity=0)
    with connection.cursor() as cursor:
        # Without citus its maintenance daemon stops, and with it the connection it keeps to this
        # database (deadlock detection), which would keep the test database from being dropped.
        cursor.execute("DROP EXTENSION citus")


def test_distribute_ingest_and_search_with_ef_search_on_the_shards(citus):
    call_command("citus_distribute", "--shard-count", "4", stdout=io.StringIO())
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [
        {
            "sha256": f"{i:064x}",
            "file": f"i/{i}.jpg",
            "path": f"{i}.jpg",
            "state": Image.State.EMBEDDED,
            "vectors": {"m": ("m", v)},
        }
        for i, v in enumerate(vectors)
    ]
    from django.test import override_settings

    with override_settings(CLIP_IMAGE_MODEL="m"):
        from gallery import switch

        switch.clear_cache()
        images_upsert(rows)
        images_upsert(rows[:10])  # ON CONFLICT (sha256) on the distributed table: no duplicates
    assert Image.objects.count() == 200
    assert selectors.on_citus(connection) is True
    page = selectors.image_search_by_vector(vectors[42], limit=5)
    assert page.results[0].path == "42.jpg"
    with transaction.atomic(), connection.cursor() as cursor:
        for statement, params in selectors.scan_settings_sql(depth=700, exact=False, citus=True):
            cursor.execute(statement, params)
        # Evaluated on each shard (a multi-shard query pushes the target list down).
        cursor.execute(
            "SELECT DISTINCT inet_server_port(), current_setting('hnsw.ef_search') FROM gallery_image ORDER BY 1"
        )
        seen = cursor.fetchall()
    assert {setting for _, setting in seen} == {"700"}
    if citus:  # a separate worker server holds shards, and its shards saw the setting too
        assert citus["port"] in {port for port, _ in seen}, seen
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_dist_shard JOIN pg_dist_placement USING (shardid)"
                " JOIN pg_dist_node USING (groupid) WHERE logicalrelid = 'gallery_image'::regclass AND nodeport = %s",
                [citus["port"]],
            )
            assert cursor.fetchone()[0] > 0


def test_switch_encoder_on_the_distributed_table(citus, settings, tmp_path):
    """fill, build-index (CONCURRENTLY), switch (column and index renames), rollback, drop: on the shards."""
    from encoders import embeddings, world
    from gallery import switch
    from gallery.ingest import Ingestor
    from tests.world import TRAINED_SETTINGS

    call_command("citus_distribute", "--shard-count", "4", stdout=io.StringIO())
    world.make_world(tmp_path, count=24, seed=13)
    settings.NEXT_CLIP_IMAGE_MODEL = TRAINED_SETTINGS["CLIP_IMAGE_MODEL"]
    settings.NEXT_CLIP_TEXT_MODEL = TRAINED_SETTINGS["CLIP_TEXT_MODEL"]
    switch.clear_cache()
    assert Ingestor(batch_size=32).run([tmp_path]).counts["embedded"] == 24
    old_id = embeddings.image_encoder_id()
    trained_id = embeddings.image_encoder_id(settings.NEXT_CLIP_IMAGE_MODEL)

    def ranking():
        return [image.pk for image in selectors.image_search_by_text("a red star", limit=10).results]

    before = ranking()
    assert switch.fill(batch_size=16).filled == 24
    call_command("switch_encoder", "build-index", stdout=io.StringIO())
    assert switch.index_state() == "ready"
    call_command("switch_encoder", "switch", stdout=io.StringIO())
    assert set(Image.objects.values_list("encoder", flat=True)) == {trained_id}
    assert len(ranking()) == 10
    with connection.cursor() as cursor:  # the shards' columns were renamed too: a multi-shard read
        cursor.execute("SELECT DISTINCT encoder_next FROM gallery_image")
        assert cursor.fetchall() == [(old_id,)]
        # ... and their indexes: on every shard, the index named as the model's is on "embedding".
        cursor.execute(
            "SELECT nodeport, result FROM run_command_on_shards('gallery_image', $$SELECT string_agg("
            "regexp_replace(indexdef, '^.*INDEX (\\w+?)_\\d+ ON .* USING hnsw \\((\\w+) .*$', '\\1 \\2'), ', '"
            " ORDER BY indexname) FROM pg_indexes WHERE tablename = '%s' AND indexdef LIKE '%%hnsw%%'$$)"
            " JOIN pg_dist_shard_placement USING (shardid)"
        )
        shards = cursor.fetchall()
    assert len(shards) == 4
    assert {result for _, result in shards} == {f"{switch.INDEX} embedding, {switch.NEXT_INDEX} embedding_next"}, shards
    if citus:
        assert citus["port"] in {port for port, _ in shards}
    call_command("switch_encoder", "rollback", stdout=io.StringIO())
    assert ranking() == before
    call_command("switch_encoder", "switch", stdout=io.StringIO())
    call_command("switch_encoder", "drop", stdout=io.StringIO())
    assert not Image.objects.filter(embedding_next__isnull=False).exists()
    assert switch.index_state() == "absent"
