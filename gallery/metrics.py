"""The collection's metrics for Prometheus: images embedded, images by state, the embedding queue's depth.

``IMAGES_EMBEDDED`` counts vectors written by this process (uploads, ``embed_images``, re-embedding,
and Celery tasks, which all go through ``services.images_upsert`` or ``images_reembed``):
``rate(imagesearch_images_embedded_total[5m])`` is images/s. A counter lives in the process that
embeds, so a worker on another machine is not in the web's figure; the fleet's rate, wherever the
workers run, is ``deriv(imagesearch_images{state="embedded"}[5m])`` from the collector below, which
counts from the database at each scrape.

The collectors run when Prometheus scrapes (core/metrics.py), never on their own; a database or
broker that does not answer leaves its metric out of that scrape (``imagesearch_broker_up`` says
which) instead of failing the scrape.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import Image

logger = logging.getLogger(__name__)

IMAGES_EMBEDDED = Counter(
    "imagesearch_images_embedded",
    "Images embedded by this process (vectors written: uploads, embed_images, re-embedding, workers).",
)

# kombu's Redis transport keeps a queue as a Redis list named after it, plus one list per priority
# step above 0 (kombu.transport.redis: PRIORITY_STEPS and Channel.sep); messages sent without a
# priority go to the plain one.
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
BROKER_TIMEOUT = 1.0  # seconds: a broker that does not answer must not hold up the scrape


class ImagesByState(Collector):
    """``imagesearch_images{state=...}``: one GROUP BY over the state index at each scrape."""

    @staticmethod
    def queryset():
        # count(*), not count(id): the state index alone answers it (an index-only scan), where
        # count(id) would read every row's heap tuple, vectors and all (bench/README.md, "Metrics").
        return Image.objects.order_by().values_list("state").annotate(n=Count("*"))

    def collect(self):
        try:
            counts = dict(self.queryset())
        except DatabaseError as exc:
            logger.warning("metrics: cannot count images: %s", exc)
            return
        family = GaugeMetricFamily("imagesearch_images", "Images in the collection, by state.", labels=["state"])
        for state in Image.State.values:
            family.add_metric([state], counts.get(state, 0))
        yield family


def kombu_queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu's Redis transport keeps ``queue``'s waiting messages in."""
    return [queue if step == 0 else f"{queue}{KOMBU_PRIORITY_SEPARATOR}{step}" for step in KOMBU_PRIORITY_STEPS]


def redis_url(broker_url: str) -> str | None:
    """The redis-py URL of a Celery broker URL, or None when the broker is not Redis."""
    scheme = broker_url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        return broker_url
    if scheme == "redis+socket":  # kombu's spelling of a Unix socket
        return "unix://" + broker_url.split("://", 1)[1]
    return None


class EmbedQueueDepth(Collector):
    """``imagesearch_embed_queue_messages{queue=...}``: messages waiting for a worker (LLEN at each scrape).

    Only with a Redis broker (CELERY_BROKER_URL); without one there is no queue and no metric.
    Messages a worker has taken but not acknowledged yet (late acknowledgement) are not waiting,
    so they are not counted.
    """

    def collect(self):
        broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
        url = redis_url(broker) if broker else None
        if url is None:
            return
        import redis  # only with a broker: the default setup never loads it

        queue = getattr(settings, "EMBED_QUEUE", "") or "embed"
        client = redis.Redis.from_url(url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT)
        try:
            pipe = client.pipeline(transaction=False)
            for key in kombu_queue_keys(queue):
                pipe.llen(key)
            depth = sum(pipe.execute())
        except redis.RedisError as exc:
            logger.warning("metrics: cannot read the queue %s from the broker: %s", queue, exc)
            depth = None
        finally:
            client.close()
        up = GaugeMetricFamily("imagesearch_broker_up", "1 when the broker answered this scrape, else 0.")
        up.add_metric([], 0 if depth is None else 1)
        yield up
        if depth is not None:
            family = GaugeMetricFamily(
                "imagesearch_embed_queue_messages", "Embedding messages waiting for a worker.", labels=["queue"]
            )
            family.add_metric([queue], depth)
            yield family
