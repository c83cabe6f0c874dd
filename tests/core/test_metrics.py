"""Prometheus metrics at /metrics: who may read them, and that each figure follows what really happened.

Every figure is read the way Prometheus reads it: GET /metrics through the whole Django stack, the
text parsed with prometheus_client's own parser. The queue depth comes from a real redis-server.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from gallery.metrics import kombu_queue_keys
from gallery.models import Image
from tests.factories import make_images, upload, write_photos
from tests.servers import redis_server

TOKEN = "a-long-random-token-for-the-prometheus-scraper"

ON = {"METRICS_ENABLED": True, "METRICS_TOKEN": TOKEN}
WITH_MIDDLEWARE_ON = {
    **ON,
    "MIDDLEWARE": [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *django_settings.MIDDLEWARE,
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ],
}


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, by (name, sorted labels), read with the bearer token."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def searches(samples, kind: str) -> float:
    return samples[("imagesearch_search_seconds_count", (("kind", kind),))]


# Who may read them


@pytest.mark.django_db
def test_metrics_are_not_there_unless_turned_on(client, admin_client):
    assert client.get("/metrics").status_code == 404
    assert admin_client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.django_db
@override_settings(**ON)
def test_only_staff_or_the_token_may_read_them(client, admin_client, django_user_model):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 403
    client.force_login(django_user_model.objects.create_user("visitor"))
    assert client.get("/metrics").status_code == 403

    assert admin_client.get("/metrics").status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.django_db
@override_settings(METRICS_ENABLED=True, METRICS_TOKEN="")
def test_an_empty_token_lets_nobody_in_with_it(client):
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer"}).status_code == 403


# What they say


@pytest.mark.django_db
@override_settings(**WITH_MIDDLEWARE_ON)
def test_the_exposition_parses_and_counts_requests(client):
    before = scrape(client)
    for _ in range(3):
        client.get("/")
    after = scrape(client)
    method = ("django_http_requests_total_by_method_total", (("method", "GET"),))
    # Three pages and the first scrape went through the middleware since the first scrape's count.
    assert after[method] - before[method] == 4
    for kind in ("text", "image", "similar"):
        assert ("imagesearch_search_seconds_bucket", (("kind", kind), ("le", "+Inf"))) in after
    assert ("imagesearch_images_embedded_total", ()) in after


@pytest.mark.django_db
@override_settings(**ON)
def test_each_kind_of_search_is_counted_in_its_own_histogram(client):
    images = make_images(6)
    start = scrape(client)

    assert client.get("/", {"q": "a photo"}).status_code == 200
    assert client.get("/api/search", {"q": "a photo"}).status_code == 200
    after_text = scrape(client)
    assert searches(after_text, "text") - searches(start, "text") == 2
    assert searches(after_text, "image") == searches(start, "image")
    assert after_text[("imagesearch_search_seconds_sum", (("kind", "text"),))] > 0

    assert client.get(f"/api/images/{images[0].pk}/similar").status_code == 200
    assert client.post("/api/search/image", {"image": upload(3)}).status_code == 200
    after = scrape(client)
    assert searches(after, "similar") - searches(after_text, "similar") == 1
    assert searches(after, "image") - searches(after_text, "image") == 1
    assert searches(after, "text") == searches(after_text, "text")

    # A refused search (an unreadable file) is no search: not counted.
    assert client.post("/api/search/image", {"image": upload(b"not a picture", "x.jpg")}).status_code == 400
    assert searches(scrape(client), "image") == searches(after, "image")


@pytest.mark.django_db(transaction=True)  # embed_images decodes in worker threads
@override_settings(**ON)
def test_embed_images_counts_the_images_it_embedded(client, tmp_path):
    write_photos(tmp_path / "lib", 5)
    (tmp_path / "lib" / "broken.jpg").write_bytes(b"not a picture")
    before = scrape(client)[("imagesearch_images_embedded_total", ())]
    call_command("embed_images", str(tmp_path / "lib"), "--batch-size", "2", verbosity=0)
    assert scrape(client)[("imagesearch_images_embedded_total", ())] - before == 5

    # Run again: nothing new is embedded, nothing counted.
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)
    assert scrape(client)[("imagesearch_images_embedded_total", ())] - before == 5


@pytest.mark.django_db
@override_settings(**ON)
def test_images_by_state_match_the_database(client):
    images = make_images(7)
    Image.objects.filter(pk__in=[images[0].pk, images[1].pk]).update(state=Image.State.FAILED, error="broken")
    Image.objects.filter(pk=images[2].pk).update(state=Image.State.PENDING)
    samples = scrape(client)
    shown = {state: samples[("imagesearch_images", (("state", state),))] for state in Image.State.values}
    assert shown == {"embedded": 4, "failed": 2, "pending": 1}
    assert shown == {state: Image.objects.filter(state=state).count() for state in Image.State.values}


@pytest.mark.django_db
@override_settings(**ON)
def test_without_a_broker_there_is_no_queue_metric(client):
    samples = scrape(client)
    assert not any(name.startswith("imagesearch_embed_queue") for name, _ in samples)
    assert ("imagesearch_broker_up", ()) not in samples


# The embedding queue, in a real Redis


@pytest.fixture(scope="module")
def redis_socket(tmp_path_factory):
    """A private redis-server on a Unix socket in a temporary folder, for this module."""
    with redis_server(tmp_path_factory.mktemp("redis"), reason="the queue-depth tests need redis-server") as socket:
        yield socket


@pytest.mark.django_db
def test_queue_depth_is_the_length_of_the_redis_list(client, redis_socket, settings):
    import redis

    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, TOKEN
    settings.CELERY_BROKER_URL = f"redis+socket://{redis_socket}"
    settings.EMBED_QUEUE = "embed-metrics-test"
    broker = redis.Redis(unix_socket_path=str(redis_socket))
    plain, *by_priority = kombu_queue_keys("embed-metrics-test")
    broker.delete(plain, *by_priority, "other")
    depth = ("imagesearch_embed_queue_messages", (("queue", "embed-metrics-test"),))

    assert scrape(client)[depth] == 0
    broker.rpush(plain, *[f"message {i}" for i in range(7)])
    broker.rpush(by_priority[-1], "urgent")  # kombu's list for priority 9
    broker.rpush("other", "another queue's")
    samples = scrape(client)
    assert samples[depth] == 8
    assert samples[("imagesearch_broker_up", ())] == 1

    broker.lpop(plain, 3)  # a worker takes three
    assert scrape(client)[depth] == 5


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_leaves_the_scrape_working(client, settings, tmp_path):
    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, TOKEN
    settings.CELERY_BROKER_URL = f"redis+socket://{tmp_path / 'nobody-listens.sock'}"
    samples = scrape(client)
    assert samples[("imagesearch_broker_up", ())] == 0
    assert not any(name == "imagesearch_embed_queue_messages" for name, _ in samples)
    assert ("imagesearch_images", (("state", "embedded"),)) in samples


def test_a_short_token_is_refused_by_check(settings):
    from core.checks import check_metrics_token

    settings.METRICS_TOKEN = "secret"
    assert [error.id for error in check_metrics_token()] == ["core.E004"]
    settings.METRICS_TOKEN = TOKEN
    assert check_metrics_token() == []
    settings.METRICS_TOKEN = ""
    assert check_metrics_token() == []


# Several gunicorn workers: any of them answers for all


def test_under_gunicorn_every_scrape_sums_all_workers(tmp_path):
    """Real gunicorn, two workers, PROMETHEUS_MULTIPROC_DIR: whichever worker answers, the counts are everyone's.

    A stale file from an earlier run lies in the folder: config/gunicorn.conf.py clears it at start
    (prometheus_client cannot read it, so a scrape would fail on it).
    """
    import http.client
    import sys

    from tests.conftest import ROOT

    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"left by an earlier run")
    port = _free_port()
    environment = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "tests-only-secret-key",
        "ENV_FILE": "/dev/null",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "METRICS_ENABLED": "1",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "EMBEDDED_PGDATA": str(tmp_path / "pgdata"),  # nothing here should need the database
    }
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.conf.py")]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "1", "--access-logfile", "/dev/null"]
    server = subprocess.Popen(
        [*command, "config.wsgi"], cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def get(path: str, headers=None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def not_found_count() -> float:
        status, body = get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, body[:500]
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "django_http_responses_total_by_status_total" and sample.labels["status"] == "404":
                    return sample.value
        return 0

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get("/nowhere")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        # Until both workers have answered some (each counts in its own file), so the sum is needed.
        deadline = time.monotonic() + 60
        sent = 1
        while len([count for count in not_found_by_worker(folder) if count]) < 2:
            assert time.monotonic() < deadline, "only one gunicorn worker ever answered"
            assert get("/nowhere")[0] == 404
            sent += 1
        for _ in range(10):
            assert get("/nowhere")[0] == 404
            sent += 1
        assert not (folder / "counter_999999.db").exists()
        # Every scrape, from whichever worker, has every worker's 404s.
        assert {not_found_count() for _ in range(6)} == {sent}
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def not_found_by_worker(folder: Path) -> list[float]:
    """Each process's own count of 404 responses, from its file in PROMETHEUS_MULTIPROC_DIR."""
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = []
    for path in folder.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            counts += [
                sample.value
                for sample in metric.samples
                if sample.name == "django_http_responses_total_by_status_total" and sample.labels["status"] == "404"
            ]
    return counts
