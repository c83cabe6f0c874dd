"""Labels in a real browser: facets that narrow a search, and "what the encoder sees" in the lightbox and on the image page.

The generated world with its trained encoders, its vocabulary loaded and labelled.
Screenshots: var/screenshots/facets.png, labels-lightbox.png and labels-image-page.png.
"""

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command

from gallery import labels

pytestmark = pytest.mark.e2e


def carried(pk: int) -> set[str]:
    return {concept.key for concept, _ in labels.image_labels(pk)[: labels.CARRIED]}


def test_facets_narrow_and_labels_show_with_bars(open_page, live_server, live_world, screenshot):
    call_command("load_vocabulary", "--world", stdout=io.StringIO())
    call_command("label_images", "--no-progress", stdout=io.StringIO())

    page = open_page()
    page.goto(live_server.url)
    page.get_by_role("searchbox").fill("red star")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(".results .result").first.wait_for()

    facets = page.get_by_role("navigation", name="Narrow by label")
    chips = facets.locator("a.chip")
    assert 1 < chips.count() <= 8
    assert "the first 24 results" in facets.inner_text()
    counts = [int(n) for n in chips.locator(".count").evaluate_all("spans => spans.map(s => s.firstChild.data)")]
    assert counts == sorted(counts, reverse=True) and counts[0] > 1
    screenshot(page, "facets")

    # One click narrows: the box gains label:KEY, and every result carries it.
    chips.first.click()
    page.wait_for_url(re.compile(r"label%3A"))
    box = page.get_by_role("searchbox").input_value()
    assert box.startswith("red star label:world-")
    key = box.rsplit(":", 1)[1]
    assert parse_qs(urlsplit(page.url).query)["q"] == [box]
    page.locator(".results .result").first.wait_for()
    ids = page.locator(".results a.open").evaluate_all("links => links.map(a => Number(a.dataset.id))")
    assert len(ids) >= counts[0] and all(key in carried(pk) for pk in ids)

    # The lightbox: its labels with bars, each a search for that label.
    page.locator(".results a.open").first.click()
    dialog = page.locator("dialog.lightbox")
    section = dialog.locator("section.labels")
    section.wait_for()
    assert section.get_by_role("heading").inner_text() == "What the encoder sees"
    stored = labels.image_labels(ids[0])
    assert section.locator("meter").count() == min(5, len(stored))
    assert float(section.locator("meter").first.get_attribute("value")) == pytest.approx(stored[0][1], abs=1e-3)
    assert section.locator(".percent").first.inner_text() == f"{stored[0][1]:.0%}"
    assert section.get_by_role("link", name=stored[0][0].name, exact=True).count() == 1
    screenshot(page, "labels-lightbox")

    # The image page (without the script's help): the same labels; a label's link searches for it.
    page.goto(f"{live_server.url}/images/{ids[0]}/")
    section = page.locator("section.labels")
    assert section.locator("meter").count() == min(5, len(stored))
    screenshot(page, "labels-image-page")
    section.get_by_role("link", name=stored[0][0].name, exact=True).click()
    page.locator(".results .result").first.wait_for()
    assert page.get_by_role("searchbox").input_value() == f"label:{stored[0][0].key}"
