"""System checks for the search settings: the HNSW walk, paging and the image-search guards."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured

from gallery.checks import seconds, whole_number

from .selectors import EF_SEARCH_MAX, SEARCH_MAX_DEPTH
from .throttle import parse_rate


def check_search_settings(app_configs=None, **kwargs) -> list[Error]:
    """IMAGE_SEARCH_RATE, HNSW_EF_SEARCH, SEARCH_PAGE_SIZE, IMAGE_SEARCH_*, TRUSTED_PROXY_COUNT."""
    return [
        *_rate(),
        *whole_number(
            "HNSW_EF_SEARCH",
            settings.HNSW_EF_SEARCH,
            low=1,
            high=EF_SEARCH_MAX,
            id="search.E002",
            hint="pgvector's hnsw.ef_search takes 1 to 1000 candidates per query.",
        ),
        *whole_number(
            "SEARCH_PAGE_SIZE",
            settings.SEARCH_PAGE_SIZE,
            low=1,
            high=SEARCH_MAX_DEPTH,
            id="search.E003",
            hint=f"Paging ends at result {SEARCH_MAX_DEPTH}, so no page can be longer.",
        ),
        *whole_number(
            "IMAGE_SEARCH_CONCURRENCY",
            settings.IMAGE_SEARCH_CONCURRENCY,
            low=0,
            id="search.E004",
            hint="Images encoded at once per process; 0 for no cap.",
        ),
        *seconds(
            "IMAGE_SEARCH_QUEUE_TIMEOUT",
            settings.IMAGE_SEARCH_QUEUE_TIMEOUT,
            zero=True,
            id="search.E005",
            hint="How long an image search waits for a free encoding slot before a 429.",
        ),
        *whole_number(
            "TRUSTED_PROXY_COUNT",
            settings.TRUSTED_PROXY_COUNT,
            low=0,
            id="search.E006",
            hint="Proxies in front of the site that append to X-Forwarded-For; 0 for none.",
        ),
    ]


def _rate() -> list[Error]:
    try:
        parse_rate(settings.IMAGE_SEARCH_RATE)
    except ImproperlyConfigured as exc:  # its message names the setting and the forms it takes
        return [Error(str(exc), id="search.E001")]
    return []
