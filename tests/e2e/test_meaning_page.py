"""The page finds the right pictures for queries in Chinese and Arabic (the trained world encoders).

Screenshots: var/screenshots/meaning-zh-desktop.png and meaning-ar-phone.png.
"""

import numpy as np
import pytest

from encoders import world

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("language", "attrs", "wanted", "phone"),
    [
        ("zh", {"kind": "star", "colour": "red"}, "red-star", False),
        ("ar", {"kind": "boat"}, "boat", True),
    ],
)
def test_a_query_in_chinese_or_arabic_shows_its_pictures(
    open_page, live_server, live_world, screenshot, language, attrs, wanted, phone
):
    q = world.phrase(language, np.random.default_rng(3), **attrs)
    relevant = sum(wanted in labels for labels in live_world.values())
    page = open_page(phone=phone)
    page.goto(live_server.url)
    page.get_by_role("searchbox").fill(q)
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(".results .result").first.wait_for()
    ids = page.locator(".results a.open").evaluate_all("links => links.map(a => Number(a.dataset.id))")
    top = ids[: min(10, relevant)]
    hits = sum(wanted in live_world[pk] for pk in top)
    screenshot(page, f"meaning-{language}-{'phone' if phone else 'desktop'}")
    assert page.get_by_role("searchbox").input_value() == q
    assert hits / len(top) >= 0.8, (q, hits, len(top))
