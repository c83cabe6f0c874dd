"""The search page in a real browser: text, an uploaded image, the similar walk, more results, the lightbox.

Each test also saves screenshots (desktop 1366x900 and phone 390x844) under var/screenshots/.
"""

import base64

import pytest

from tests.factories import image_bytes

pytestmark = pytest.mark.e2e


def result_ids(page) -> list[str]:
    return page.locator(".results a.open").evaluate_all("links => links.map(a => a.dataset.id)")


def search(page, live_server, q: str):
    page.goto(live_server.url)
    page.get_by_role("searchbox").fill(q)
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(".results .result").first.wait_for()


def test_type_a_query_and_see_results(open_page, live_server, gallery, screenshot):
    for phone in (False, True):
        page = open_page(phone=phone)
        page.goto(live_server.url)
        assert page.get_by_text("60 images to search.").is_visible()
        screenshot(page, f"landing-{'phone' if phone else 'desktop'}")
        search(page, live_server, "ein roter Hund am Strand")
        assert page.locator(".results .result").count() == 24
        assert page.locator(".results .score").first.inner_text().startswith("0.")
        assert "q=ein+roter+Hund+am+Strand" in page.url
        screenshot(page, f"results-{'phone' if phone else 'desktop'}")
        screenshot(page, f"results-{'phone' if phone else 'desktop'}-full", full_page=True)


def test_upload_drop_or_paste_an_image_and_see_results(open_page, live_server, gallery, screenshot, tmp_path):
    page = open_page()
    page.goto(live_server.url)
    query = tmp_path / "mine.jpg"
    query.write_bytes(image_bytes(107))
    # Choosing a file is enough: the script submits it.
    page.locator('input[type="file"]').set_input_files(str(query))
    page.locator(".query-image img").wait_for()
    assert page.locator(".results .result").count() == 24
    assert result_ids(page)[0] == str(gallery[7].pk)
    screenshot(page, "image-search-desktop")

    # Dropping an image anywhere on the page does the same.
    page.goto(live_server.url)
    data = base64.b64encode(image_bytes(131, "PNG")).decode()
    page.evaluate(
        """data => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
            document.body.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        data,
    )
    page.locator(".query-image img").wait_for()
    assert result_ids(page)[0] == str(gallery[31].pk)

    # So does pasting one.
    page.goto(live_server.url)
    data = base64.b64encode(image_bytes(145)).decode()
    page.evaluate(
        """data => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "pasted.jpg", {type: "image/jpeg"}));
            window.dispatchEvent(new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}));
        }""",
        data,
    )
    page.locator(".query-image img").wait_for()
    assert result_ids(page)[0] == str(gallery[45].pk)


def test_click_similar_twice_and_see_the_breadcrumb(open_page, live_server, gallery, screenshot):
    for phone in (False, True):
        page = open_page(phone=phone)
        search(page, live_server, "雪山")
        first = result_ids(page)[0]
        page.locator(".results .result").first.get_by_role("link", name="Similar").click()
        page.locator(".walk").wait_for()
        assert first not in result_ids(page)
        second = result_ids(page)[0]
        page.locator(".results .result").first.get_by_role("link", name="Similar").click()
        page.wait_for_url(f"**similar={second}**")
        crumbs = page.locator(".walk li")
        assert crumbs.count() == 3
        assert crumbs.nth(0).inner_text() == "“雪山”"
        assert crumbs.nth(1).locator("a").get_attribute("href").endswith(f"similar={first}")
        assert second not in result_ids(page)
        screenshot(page, f"similar-{'phone' if phone else 'desktop'}")
        # The way back: the first step of the walk, then the query.
        crumbs.nth(1).locator("a").click()
        page.wait_for_url(f"**similar={first}")
        assert page.locator(".walk li").count() == 2
        page.locator(".walk li").first.get_by_role("link").click()
        page.wait_for_url("**/?q=%E9%9B%AA%E5%B1%B1")
        assert result_ids(page)[0] == first


def test_load_more_appends_the_next_results(open_page, live_server, gallery, screenshot):
    page = open_page()
    search(page, live_server, "a photo of a cat sleeping on a sofa")
    url = page.url
    page.get_by_role("link", name="More results").click()
    page.wait_for_function("document.querySelectorAll('.results .result').length === 48")
    page.get_by_role("link", name="More results").click()
    page.wait_for_function("document.querySelectorAll('.results .result').length === 60")
    ids = result_ids(page)
    assert len(set(ids)) == 60
    assert page.url == url  # appended in place
    assert page.get_by_text("That is all.").is_visible()
    assert page.get_by_role("link", name="More results").count() == 0


def test_an_image_opens_in_a_lightbox_with_its_metadata(open_page, live_server, gallery, screenshot):
    for phone in (False, True):
        page = open_page(phone=phone)
        search(page, live_server, "people at a market")
        ids = result_ids(page)
        page.locator(".results a.open").first.click()
        dialog = page.locator("dialog.lightbox")
        dialog.locator(".image-detail").wait_for()
        text = dialog.inner_text()
        assert "320 × 240 px" in text and "Open original" in text
        dialog.locator(".image-detail figure img").evaluate("img => img.decode()")
        screenshot(page, f"lightbox-{'phone' if phone else 'desktop'}")
        first_path = dialog.locator("dd").first.inner_text()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "path => document.querySelector('dialog.lightbox dd').textContent !== path", arg=first_path
        )
        page.keyboard.press("Escape")
        assert not dialog.is_visible()
        # Its own page, for people without the script or with a new tab.
        page.goto(f"{live_server.url}/images/{ids[0]}/")
        assert page.get_by_role("link", name="Similar images").is_visible()


def test_a_combined_query_with_a_filter_and_a_mistake(open_page, live_server, gallery, screenshot):
    page = open_page()
    page.goto(live_server.url)
    page.get_by_text("Search syntax").click()
    assert page.get_by_text("like:123").is_visible()
    search(page, live_server, "2:sunset + beach - people folder:holidays/2024 type:bmpx")
    # Only the folder named in the box; the unknown format is said, with where it is, and left out.
    assert page.locator(".results .result").count() == 20
    assert page.get_by_role("status").filter(has_text="“type:bmpx” (at character 48)").is_visible()
    # Filters typed in the box stay in the box: the Filters panel is for its own fields.
    assert page.locator("details.filters").get_attribute("open") is None
    screenshot(page, "query-language-desktop", full_page=True)
