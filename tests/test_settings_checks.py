"""A wrong setting fails ``manage.py check`` with an error that names it and what it takes.

The checks live beside what they guard (encoders/checks.py, gallery/checks.py, search/checks.py,
core/checks.py) and are registered by each app's ready(); these tests go through Django's registry.
"""

import json
import os
import subprocess
import sys

import pytest
from django.core.checks import ERROR, run_checks
from django.db import DatabaseError, connection, transaction

from gallery.checks import HNSW_MAX_DIMENSIONS
from gallery.fields import VECTOR_TYPES
from tests.conftest import ROOT


def error_ids() -> list[str]:
    return [message.id for message in run_checks() if message.level >= ERROR]


def the_error(check_id: str) -> str:
    (message,) = [message for message in run_checks() if message.id == check_id]
    return f"{message.msg} {message.hint or ''}"


def test_the_test_settings_pass():
    assert error_ids() == []


@pytest.mark.parametrize(
    "setting, value, check_id, accepted",
    [
        ("EMBEDDING_BACKEND", "tensorrt", "encoders.E001", "one of torch, onnx, onnx-int8"),
        ("EMBEDDING_BACKEND", "", "encoders.E001", "one of torch, onnx, onnx-int8"),
        ("EMBEDDING_BATCH_SIZE", 0, "encoders.E002", "a whole number, 1 or more"),
        ("CLIP_IMAGE_MODEL", "", "encoders.E003", "a Hugging Face hub name or a local folder"),
        ("CLIP_TEXT_MODEL", " ", "encoders.E003", "a Hugging Face hub name or a local folder"),
        ("VECTOR_STORAGE", "float16", "gallery.E001", "one of vector, halfvec"),
        ("EMBEDDING_DIMENSIONS", 0, "gallery.E002", "a whole number from 1 to 4000"),
        ("EMBEDDING_DIMENSIONS", 4001, "gallery.E002", "a whole number from 1 to 4000"),
        ("HNSW_BUILD_MEMORY", "1gb", "gallery.E003", "a PostgreSQL memory size from 64kB to 2147483647kB"),
        ("HNSW_BUILD_WORKERS", -1, "gallery.E004", "a whole number from 0 to 1024"),
        ("THUMBNAIL_SIZE", 0, "gallery.E005", "a whole number, 1 or more"),
        ("IMAGE_MAX_PIXELS", -5, "gallery.E006", "a whole number, 1 or more"),
        ("UPLOAD_MAX_BYTES", 0, "gallery.E007", "a whole number, 1 or more"),
        ("INGEST_FILE_TIMEOUT", 0.0, "gallery.E008", "a number of seconds above 0"),
        ("INGEST_FILE_TIMEOUT", float("nan"), "gallery.E008", "a number of seconds above 0"),
        ("EMBED_TASK_BATCH", 0, "gallery.E009", "a whole number, 1 or more"),
        ("IMAGE_SEARCH_RATE", "lots", "search.E001", "e.g. 20/minute or 100/hour, or 0 for none"),
        ("IMAGE_SEARCH_RATE", "20/fortnight", "search.E001", "e.g. 20/minute or 100/hour, or 0 for none"),
        ("HNSW_EF_SEARCH", 0, "search.E002", "a whole number from 1 to 1000"),
        ("HNSW_EF_SEARCH", 1001, "search.E002", "a whole number from 1 to 1000"),
        ("SEARCH_PAGE_SIZE", 0, "search.E003", "a whole number from 1 to 1000"),
        ("IMAGE_SEARCH_CONCURRENCY", -1, "search.E004", "a whole number, 0 or more"),
        ("IMAGE_SEARCH_QUEUE_TIMEOUT", -0.5, "search.E005", "a number of seconds 0 or more"),
        ("TRUSTED_PROXY_COUNT", -1, "search.E006", "a whole number, 0 or more"),
        ("REPLICA_READ_YOUR_WRITES_SECONDS", -1, "core.E011", "a whole number, 0 or more"),
        ("REPLICA_RETRY_SECONDS", -1.0, "core.E012", "a number of seconds 0 or more"),
    ],
)
def test_a_wrong_value_is_one_error_naming_the_setting_and_what_it_takes(settings, setting, value, check_id, accepted):
    setattr(settings, setting, value)
    assert error_ids() == [check_id]
    error = the_error(check_id)
    assert error.startswith(setting), error
    assert accepted in error and repr(value) in error


@pytest.mark.parametrize(
    "setting, value",
    [
        ("EMBEDDING_BACKEND", "onnx"),
        ("EMBEDDING_BACKEND", "onnx-int8"),
        ("VECTOR_STORAGE", "vector"),
        ("EMBEDDING_DIMENSIONS", 4000),
        ("HNSW_BUILD_MEMORY", "512MB"),
        ("HNSW_BUILD_WORKERS", 0),
        ("IMAGE_SEARCH_RATE", "0"),
        ("IMAGE_SEARCH_RATE", "100/hour"),
        ("HNSW_EF_SEARCH", 1000),
        ("IMAGE_SEARCH_CONCURRENCY", 0),
        ("IMAGE_SEARCH_QUEUE_TIMEOUT", 0),
        ("REPLICA_READ_YOUR_WRITES_SECONDS", 0),
        ("REPLICA_RETRY_SECONDS", 0),
    ],
)
def test_the_edges_of_what_a_setting_takes_pass(settings, setting, value):
    setattr(settings, setting, value)
    assert error_ids() == []


def test_a_replica_that_is_not_postgresql_is_an_error(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES, "replica", {"ENGINE": "django.db.backends.sqlite3"})
    settings.DATABASE_REPLICAS = ["replica"]
    assert error_ids() == ["core.E013"]
    assert "DATABASE_REPLICA_URLS must name PostgreSQL databases" in the_error("core.E013")


def test_float32_vectors_allow_fewer_dimensions_than_float16(settings):
    """pgvector's HNSW index takes 2000 dimensions of vector, 4000 of halfvec."""
    settings.EMBEDDING_DIMENSIONS = 2001
    settings.VECTOR_STORAGE = "halfvec"
    assert error_ids() == []
    settings.VECTOR_STORAGE = "vector"
    assert error_ids() == ["gallery.E002"]
    assert "at most 2000 dimensions of vector" in the_error("gallery.E002")
    settings.VECTOR_STORAGE = "float16"  # its own error; the dimensions are held to the loosest limit
    assert error_ids() == ["gallery.E001"]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(VECTOR_TYPES))
def test_the_dimension_limits_are_pgvectors(kind):
    limit = HNSW_MAX_DIMENSIONS[kind]

    def index_builds(dimensions: int) -> bool:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"CREATE TEMP TABLE limits (embedding {kind}({dimensions}))")
                cursor.execute(f"CREATE INDEX ON limits USING hnsw (embedding {VECTOR_TYPES[kind]})")
                transaction.set_rollback(True)
        except DatabaseError:
            return False
        return True

    assert index_builds(limit) and not index_builds(limit + 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text",
    ["1GB", "1 GB", "1.5GB", "65536", "64kB", "65535B", "2147483647kB", "63kB", "1gb", "2TB", "lots", "1GB' x"],
)
def test_the_memory_check_agrees_with_postgresql(settings, text):
    settings.HNSW_BUILD_MEMORY = text
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [text])
        postgresql_takes_it = True
    except DatabaseError:
        postgresql_takes_it = False
    assert ("gallery.E003" not in error_ids()) == postgresql_takes_it


def test_the_pool_sizes_are_checked_when_the_pool_is_on(settings, monkeypatch):
    # The options as config/settings.py writes them for DATABASE_POOL=1 (no connection is opened here).
    options = settings.DATABASES["default"]["OPTIONS"]
    monkeypatch.setitem(options, "pool", {"min_size": 2, "max_size": 8, "timeout": 10.0})
    assert error_ids() == []
    monkeypatch.setitem(options, "pool", {"min_size": 5, "max_size": 2, "timeout": 0.0})
    assert error_ids() == ["core.E002", "core.E003"]
    assert "DATABASE_POOL_MAX must be a whole number, 5 or more, not 2." in the_error("core.E002")
    assert "DATABASE_POOL_TIMEOUT must be a number of seconds above 0, not 0.0." in the_error("core.E003")
    monkeypatch.setitem(options, "pool", {"min_size": -1, "max_size": 8, "timeout": 10.0})
    assert error_ids() == ["core.E001"]


def manage_check(**environment: str) -> subprocess.CompletedProcess:
    """``manage.py check`` with the shipped settings, nothing from .env, and only these variables."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV_FILE": "/dev/null", "DEBUG": "1"}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", **environment)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_manage_py_check_passes_with_the_defaults():
    result = manage_check()
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_manage_py_check_fails_on_a_wrong_backend_in_the_environment():
    result = manage_check(EMBEDDING_BACKEND="tensorrt")
    assert result.returncode != 0
    assert "(encoders.E001) EMBEDDING_BACKEND must be one of torch, onnx, onnx-int8, not 'tensorrt'." in result.stderr


def _settings_in_a_fresh_process(**environment) -> dict:
    script = (
        "import json; from config import settings as s; print(json.dumps({'replicas': s.DATABASE_REPLICAS,"
        " 'databases': {a: s.DATABASES[a] for a in s.DATABASE_REPLICAS},"
        " 'routers': getattr(s, 'DATABASE_ROUTERS', None)}, default=str))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REPLICA_"))}
    env |= {"ENV_FILE": "/dev/null", "SECRET_KEY": "x", **environment}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_replica_urls_become_aliases_like_the_primary_and_none_changes_nothing():
    assert _settings_in_a_fresh_process() == {"replicas": [], "databases": {}, "routers": None}
    found = _settings_in_a_fresh_process(
        DATABASE_REPLICA_URLS="postgres://reader@/imagesearch?host=/run/pg&port=5433,postgres://u:p@db2:5432/imagesearch",
        DATABASE_POOL="1",
    )
    assert found["replicas"] == ["replica", "replica_2"]
    assert found["routers"] == ["config.replicas.PrimaryRouter"]
    first, second = found["databases"]["replica"], found["databases"]["replica_2"]
    assert first["OPTIONS"]["host"] == "/run/pg" and first["USER"] == "reader"
    assert second["HOST"] == "db2" and second["PASSWORD"] == "p"
    for entry in (first, second):
        assert entry["TEST"] == {"MIRROR": "default"}
        assert entry["OPTIONS"]["pool"]["max_size"] == 8 and entry["CONN_MAX_AGE"] == 0
        assert entry["OPTIONS"]["connect_timeout"] == 3
        assert entry["OPTIONS"]["pool"]["timeout"] == 3  # then the primary answers
