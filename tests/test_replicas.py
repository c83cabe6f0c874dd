"""Searching on a real streaming replica of the embedded PostgreSQL (DATABASE_REPLICA_URLS, config/replicas.py).

The module's replica is made with ``pg_basebackup -R`` from the primary once pytest-django has
made the test database, so the copy holds it; from then on it streams the primary's WAL. Tests
commit their rows (transactional) and wait until the replica has replayed them. Which server
answered is read on the very connection that ran each statement: ``pg_is_in_recovery()`` and
the port, with the search's own ``SET LOCAL`` settings, inside the search's transaction.
"""

from __future__ import annotations

import contextlib
import os
import time

import psycopg
import pytest
from django.db import connections
from django.test import Client, override_settings
from django.urls import reverse

from config import replicas
from config.embedded_postgres.replica import StreamingReplica
from gallery.models import Image
from search import selectors
from tests.factories import make_images, upload
from tests.test_faults import database_outage  # noqa: F401 - the fixture, marked serial by its name

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="copies the embedded server"),
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]


@pytest.fixture(scope="module")
def replica(django_db_setup, django_db_blocker):
    """A streaming replica of the test database, known to Django as the alias "replica"; searches use it."""
    with django_db_blocker.unblock():
        default = connections["default"]
        params = default.get_connection_params()
        name = default.settings_dict["NAME"]
    server = StreamingReplica.create(primary={key: params[key] for key in ("host", "port", "user")})
    entry = {
        **server.settings_dict(name),
        "CONN_MAX_AGE": default.settings_dict["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,
        # Like config/settings.py's replicas: flushed with the primary, never on their own.
        "TEST": {"MIRROR": "default"},
    }
    connections.settings["replica"] = connections.configure_settings(
        {"default": default.settings_dict, "replica": entry}
    )["replica"]
    routing = override_settings(DATABASE_REPLICAS=["replica"], DATABASE_ROUTERS=["config.replicas.PrimaryRouter"])
    routing.enable()
    try:
        yield server
    finally:
        routing.disable()
        with contextlib.suppress(Exception):
            connections["replica"].close()
        del connections["replica"]
        del connections.settings["replica"]
        replicas.forget_failures()
        server.remove()


@pytest.fixture(autouse=True)
def replica_running(replica):
    """Every test starts with the replica up, replaying, caught up and trusted; and leaves it so."""
    replicas.forget_failures()
    yield
    if not replica.running:
        replica.start()
    replica.resume_replay()
    replicas.forget_failures()
    connections["replica"].close()


@pytest.fixture
def collection(replica):
    images = make_images(60, folder="lib")
    replica.wait_for_primary()
    return images


INSPECT = (
    "SELECT pg_is_in_recovery(), current_setting('port')::int, current_setting('hnsw.ef_search')::int,"
    " current_setting('enable_sort'), current_setting('enable_indexscan'), current_setting('hnsw.iterative_scan')"
)


@contextlib.contextmanager
def statements():
    """Each alias's statements; for each ranked query (``<=>``), the server and settings its connection had."""
    seen = {"default": [], "replica": [], "ranked": []}

    def recorder(alias):
        def record(execute, sql, params, many, context):
            seen[alias].append(sql)
            result = execute(sql, params, many, context)
            if "<=>" in sql:
                # The same session and transaction the query ran in: its SET LOCALs are in effect.
                row = context["connection"].connection.execute(INSPECT).fetchone()
                seen["ranked"].append({"alias": alias, **dict(zip(INSPECT_NAMES, row, strict=True))})
            return result

        return record

    with (
        connections["default"].execute_wrapper(recorder("default")),
        connections["replica"].execute_wrapper(recorder("replica")),
    ):
        yield seen


INSPECT_NAMES = ("in_recovery", "port", "ef_search", "enable_sort", "enable_indexscan", "iterative_scan")


def touches_images(sqls: list[str]) -> list[str]:
    return [sql for sql in sqls if "gallery_image" in sql]


def test_a_deep_page_runs_every_statement_on_the_replica_with_its_settings(replica, collection, settings):
    settings.HNSW_EF_SEARCH = 10  # so the page's depth sets ef_search: 20 + 10 + 1 (one more says "next")
    with statements() as seen:
        response = Client().get("/api/search", {"q": "a red square", "limit": 10, "offset": 20})
    assert response.status_code == 200, response.content
    assert not touches_images(seen["default"]), seen["default"]
    assert seen["ranked"], "no ranked query ran"
    for ranked in seen["ranked"]:
        assert ranked["alias"] == "replica"
        assert ranked["in_recovery"] is True and ranked["port"] == replica.port
        assert ranked["ef_search"] == 31  # pgvector's default is 40: the search's own SET LOCAL is in effect
        assert ranked["iterative_scan"] == "relaxed_order"
    # The same page as the primary answers.
    with replicas.primary_only():
        primary = selectors.image_search_by_text("a red square", limit=10, offset=20)
    assert [r["id"] for r in response.json()["results"]] == [image.pk for image in primary.results]


def test_exact_search_on_a_narrow_filter_also_runs_on_the_replica(replica, collection):
    with statements() as seen:
        page = selectors.image_search_by_text("a red square", limit=5, filters=selectors.ImageFilters(format="PNG"))
    assert page.results == []  # every image is a JPEG: the count picked exact search
    assert [r["enable_indexscan"] for r in seen["ranked"]] == ["off"]
    assert seen["ranked"][0]["in_recovery"] is True
    assert not touches_images(seen["default"]) and touches_images(seen["replica"])


@pytest.mark.parametrize(
    "request_of",
    [
        pytest.param(lambda c: ("get", "/", {"q": "a red square"}), id="page-text"),
        pytest.param(lambda c: ("get", "/", {"similar": c[3].pk, "trail": f"{c[1].pk},{c[2].pk}"}), id="page-similar"),
        pytest.param(lambda c: ("get", "/", {}), id="page-empty-query"),
        pytest.param(lambda c: ("get", f"/images/{c[3].pk}/", {}), id="image-page"),
        pytest.param(lambda c: ("get", "/api/search", {"q": "a red square"}), id="api-text"),
        pytest.param(lambda c: ("get", f"/api/images/{c[3].pk}/similar", {}), id="api-similar"),
        pytest.param(lambda c: ("post", "/api/search/image", {"image": upload(5)}), id="api-image"),
        pytest.param(lambda c: ("post", "/", {"image": upload(5)}), id="page-image"),
    ],
)
def test_every_search_path_reads_only_the_replica(replica, collection, request_of):
    method, path, data = request_of(collection)
    with statements() as seen:
        response = getattr(Client(), method)(path, data)
    assert response.status_code == 200, response.content
    assert touches_images(seen["replica"])
    assert not touches_images(seen["default"]), seen["default"]
    assert all(ranked["in_recovery"] for ranked in seen["ranked"])


def test_an_image_loaded_from_the_replica_is_saved_to_the_primary(replica, collection):
    image = Image.objects.using("replica").get(pk=collection[0].pk)
    image.path = "renamed.jpg"
    image.save()  # the replica is read-only: this would fail there
    assert Image.objects.get(pk=image.pk).path == "renamed.jpg"


def test_an_uploader_sees_their_image_while_the_replica_lags(replica, collection, admin_client, settings):
    settings.REPLICA_READ_YOUR_WRITES_SECONDS = 3
    replica.pause_replay()
    uploaded = admin_client.post(reverse("admin:gallery_image_add"), {"files": [upload(777, "new.jpg")]})
    assert uploaded.status_code == 302 and "read_primary" in uploaded.cookies
    written = time.monotonic()
    new = Image.objects.get(path="new.jpg")  # on the primary
    assert not Image.objects.using("replica").filter(pk=new.pk).exists()  # not on the replica yet

    def top_hit(client):
        response = client.post("/api/search/image", {"image": upload(777)})
        assert response.status_code == 200, response.content
        assert "read_primary" not in response.cookies  # a search writes nothing
        return response.json()["results"][0]["id"]

    anonymous = Client()
    assert top_hit(admin_client) == new.pk  # the uploader's searches read the primary
    assert top_hit(anonymous) != new.pk  # everyone else's read the lagging replica
    for client in (admin_client, anonymous):  # the image page asks the primary for what the replica lacks
        assert client.get(reverse("search:image", args=[new.pk])).status_code == 200
        assert client.get(f"/api/images/{new.pk}/similar").status_code == 200
    assert admin_client.get(reverse("admin:gallery_image_changelist")).content.decode().count("new.jpg")

    time.sleep(max(0.0, written + 4.5 - time.monotonic()))  # the window is over (whole seconds)
    assert top_hit(admin_client) != new.pk  # back on the replica, which still lags
    replica.resume_replay()
    replica.wait_for_primary()
    assert top_hit(anonymous) == new.pk


def test_a_stopped_replica_hands_searches_to_the_primary_and_is_left_alone_a_while(replica, collection):
    expected = Client().get("/api/search", {"q": "a red square"}).json()
    replica.stop(mode="immediate")
    response = Client().get("/api/search", {"q": "a red square"})
    assert response.status_code == 200, response.content
    assert response.json() == expected
    assert replicas.backed_off("replica")
    with statements() as seen:
        assert Client().get("/", {"q": "a red square"}).status_code == 200
        assert Client().get(reverse("search:image", args=[collection[0].pk])).status_code == 200
    assert seen["replica"] == []  # not even tried during the back-off
    assert {ranked["in_recovery"] for ranked in seen["ranked"]} == {False}


def test_a_connection_that_breaks_mid_search_is_retried_on_the_primary(replica, collection):
    first = selectors.image_search_by_text("a red square", limit=10)
    (pid,) = connections["replica"].cursor().connection.execute("SELECT pg_backend_pid()").fetchone()
    with psycopg.connect(**replica.params("postgres"), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    with statements() as seen:
        again = selectors.image_search_by_text("a red square", limit=10)
    assert [i.pk for i in again.results] == [i.pk for i in first.results]
    assert seen["replica"]  # it was tried, broke, and the primary answered
    assert [ranked["alias"] for ranked in seen["ranked"]] == ["default"]
    # The replica itself is up (Django reconnected at once): the next search uses it again.
    assert not replicas.backed_off("replica")
    with statements() as seen:
        selectors.image_search_by_text("a red square", limit=10)
    assert [ranked["alias"] for ranked in seen["ranked"]] == ["replica"]

    # The replica goes away under an open connection: the primary answers, the replica is left alone.
    replica.stop(mode="immediate")
    with statements() as seen:
        again = selectors.image_search_by_text("a red square", limit=10)
    assert [i.pk for i in again.results] == [i.pk for i in first.results]
    assert seen["replica"] and [ranked["alias"] for ranked in seen["ranked"]] == ["default"]
    assert replicas.backed_off("replica")


def test_with_the_primary_down_too_searches_are_503_not_500(replica, collection, database_outage):  # noqa: F811
    stop, start = database_outage
    replica.stop(mode="immediate")
    stop()
    for path in ("/api/search?q=red", "/?q=red"):
        response = Client().get(path)
        assert response.status_code == 503, response.content
        assert "The database is not reachable right now" in response.content.decode()
    start()
    assert Client().get("/api/search", {"q": "red"}).status_code == 200
