"""GET /metrics: Prometheus's text exposition, when METRICS_ENABLED is set.

Who may read it: a staff user logged in to the admin (to look), or Prometheus sending
``Authorization: Bearer <METRICS_TOKEN>`` (its ``authorization: {credentials_file: ...}`` scrape
option). A token rather than a separate port: django-prometheus's export port is one HTTP server per
process, so behind gunicorn each worker would need its own port and every worker its own scrape
target, and the port would be open to anyone who can reach it. The page here goes through the site's
own address, TLS and access checks, and in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, see
config/gunicorn.conf.py) any worker answers for all of them.

What it holds: django-prometheus's request metrics (its middleware, added by settings when
METRICS_ENABLED), search latency by kind (search/metrics.py), images embedded, images by state and
the embedding queue's depth (gallery/metrics.py). The last two are counted at scrape time.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from gallery.metrics import EmbedQueueDepth, ImagesByState

# Counted when scraped, from the database and the broker: the same in every process.
AT_SCRAPE = CollectorRegistry()
AT_SCRAPE.register(ImagesByState())
AT_SCRAPE.register(EmbedQueueDepth())


def _bearer_token_matches(request) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def _process_metrics() -> CollectorRegistry:
    """This process's metrics, or with PROMETHEUS_MULTIPROC_DIR those of every gunicorn worker, summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@require_GET
@never_cache
def metrics(request):
    if not settings.METRICS_ENABLED:
        raise Http404("Metrics are off (METRICS_ENABLED).")
    user = request.user
    if not (_bearer_token_matches(request) or (user.is_active and user.is_staff)):
        response = HttpResponse(
            "Metrics are for staff: log in to the admin, or send Authorization: Bearer <METRICS_TOKEN>.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
        return response
    body = generate_latest(_process_metrics()) + generate_latest(AT_SCRAPE)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
