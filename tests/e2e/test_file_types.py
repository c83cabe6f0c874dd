"""The page's script sends only files the format registry reads, and says so for the rest."""

import pytest
from django.conf import settings

from gallery import formats
from gallery.models import Image

pytestmark = pytest.mark.e2e

DROP = """([name, type]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File(["not an image"], name, {type}));
    document.body.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""


@pytest.mark.django_db(transaction=True)
def test_a_dropped_file_the_site_cannot_read_is_refused_on_the_page(open_page, live_server):
    # One image, so the server gets as far as reading what it is sent.
    Image.objects.create(
        sha256="0" * 64, file="i/0.jpg", embedding=[1.0] * settings.EMBEDDING_DIMENSIONS, state=Image.State.EMBEDDED
    )
    page = open_page()
    for name, kind in [("notes.txt", "text/plain"), ("drawing.svg", "image/svg+xml")]:
        page.goto(live_server.url)
        assert page.locator('input[type="file"]').get_attribute("accept") == formats.ACCEPT
        page.evaluate("window.stayed = true")
        page.evaluate(DROP, [name, kind])
        assert page.get_by_role("alert").inner_text() == "That file is not an image this site can read."
        page.wait_for_timeout(300)
        assert page.evaluate("window.stayed === true"), f"{name} was sent"
    # A name the registry knows: sent, and the server decides (these bytes are no picture).
    page.evaluate(DROP, ["scan.ppm", "image/x-portable-pixmap"])
    page.get_by_role("alert").filter(has_text="in a format this server cannot read").wait_for()
    assert not page.evaluate("window.stayed === true")
