"""What the encoder sees on the image page, and facets: the labels most common in the results shown.

The generated world with its trained encoders and its vocabulary (``load_vocabulary --world``).
"""

import io
import re
from collections import Counter
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command

from gallery import labels
from gallery.models import Concept, Image
from search import selectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(world_collection):
    call_command("load_vocabulary", "--world", stdout=io.StringIO())
    call_command("label_images", "--no-progress", stdout=io.StringIO())
    return world_collection


def carried(pk: int) -> list[str]:
    """The keys of the labels image ``pk`` carries (its three most probable)."""
    return [concept.key for concept, _ in labels.image_labels(pk)[: labels.CARRIED]]


def expected_counts(ids: list[int], exclude: set[str] = frozenset()) -> Counter:
    return Counter(key for pk in ids for key in carried(pk) if key not in exclude)


def test_facets_count_the_labels_the_results_carry(labelled, django_assert_max_num_queries):
    ids = list(labelled)[:40]
    with django_assert_max_num_queries(1):
        found = selectors.labels_of_images(ids)
    facets = selectors.label_facets(found)
    counts = expected_counts(ids)
    assert 1 < len(facets) <= selectors.FACETS
    assert [f.count for f in facets] == sorted((f.count for f in facets), reverse=True)
    assert all(f.count == counts[f.concept.key] for f in facets)
    # The most common ones: nothing left out counts more than the last one shown.
    shown = {f.concept.key for f in facets}
    assert all(n <= facets[-1].count for key, n in counts.items() if key not in shown)
    # A label already filtered on (by key or by any of its names, any case) is no step: left out.
    top = facets[0].concept
    others = selectors.label_facets(found, exclude=[top.name.upper()])
    assert top.key not in {f.concept.key for f in others}
    assert selectors.label_facets({}) == []


def test_the_api_answers_facets_of_its_page(labelled, client):
    body = client.get("/api/search", {"q": "a red star", "limit": 24}).json()
    ids = [result["id"] for result in body["results"]]
    counts = expected_counts(ids)
    assert body["facets"] and set(body["facets"][0]) == {"key", "name", "count"}
    assert {f["key"]: f["count"] for f in body["facets"]} == {
        key: counts[key] for key in {f["key"] for f in body["facets"]}
    }
    assert body["facets"][0]["count"] == max(counts.values())

    # Narrowed by one: every result carries it, and it is no longer offered.
    key = body["facets"][0]["key"]
    narrowed = client.get("/api/search", {"q": f"a red star label:{key}", "limit": 24}).json()
    assert narrowed["results"] and all(key in carried(r["id"]) for r in narrowed["results"])
    assert key not in {f["key"] for f in narrowed["facets"]}
    # Other searches answer them too.
    similar = client.get(f"/api/images/{ids[0]}/similar", {"limit": 5}).json()
    assert similar["facets"] and sum(f["count"] for f in similar["facets"]) <= 5 * labels.CARRIED


def chips(html: str) -> list[tuple[str, str, int]]:
    """(href, name, count) of each facet on the page."""
    found = re.findall(r'<a class="chip" href="([^"]+)"[^>]*>([^<]+) <span class="count">(\d+)<', html)
    return [(unescape(href), name, int(count)) for href, name, count in found]


def test_the_results_page_offers_facets_that_narrow(labelled, client):
    html = client.get("/", {"q": "a red star", "folder": ""}).content.decode()
    assert "the first 24 results" in html  # what they count is said
    offered = chips(html)
    assert 1 < len(offered) <= selectors.FACETS
    href, name, count = offered[0]
    query = parse_qs(urlsplit(href).query)
    assert query["q"][0].startswith("a red star label:world-")
    key = query["q"][0].rsplit(":", 1)[1]
    assert name == Concept.objects.get(key=key).name

    # Following it keeps the other filters and narrows: every result carries the label.
    narrowed = client.get(href)
    results = [int(pk) for pk in re.findall(r'data-id="(\d+)"', narrowed.content.decode())]
    assert results and all(key in carried(pk) for pk in results)
    assert len(results) >= count
    assert key not in {
        parse_qs(urlsplit(h).query)["q"][0].rsplit(":", 1)[1] for h, _, _ in chips(narrowed.content.decode())
    }

    # A filter from the Filters panel stays on the chips' links.
    kind = Image.objects.values_list("format", flat=True).first()
    filtered = chips(client.get("/", {"q": "a red star", "format": kind}).content.decode())
    assert filtered and all(parse_qs(urlsplit(h).query).get("format") == [kind] for h, _, _ in filtered)


def test_the_image_page_shows_what_the_encoder_sees(labelled, client):
    pk = next(iter(labelled))
    stored = labels.image_labels(pk)
    html = client.get(f"/images/{pk}/").content.decode()
    assert "What the encoder sees" in html
    meters = re.findall(r'<meter min="0" max="1" value="([\d.]+)"', html)
    assert [float(v) for v in meters] == pytest.approx([p for _, p in stored[:5]], abs=1e-4)
    top, probability = stored[0]
    assert f"?q=label%3A{top.key}" in html and f">{top.name}</a>" in html
    assert f"{probability:.0%}" in html
    # The lightbox's fragment shows them too.
    fragment = client.get(f"/images/{pk}/", headers={"X-Partial": "image"}).content.decode()
    assert "What the encoder sees" in fragment and "<meter" in fragment


def test_no_labels_no_box(world_collection, client):
    pk = next(iter(world_collection))
    assert Image.objects.filter(pk=pk, state=Image.State.EMBEDDED).exists()
    html = client.get(f"/images/{pk}/").content.decode()
    assert "What the encoder sees" not in html and "<meter" not in html
    assert 'class="facets"' not in client.get("/", {"q": "a red star"}).content.decode()
