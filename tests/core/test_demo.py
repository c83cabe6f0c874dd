"""The demo says plainly what it is, and only the demo says it."""

from html.parser import HTMLParser


class Notes(HTMLParser):
    """The text of <aside class="demo-note">."""

    def __init__(self):
        super().__init__()
        self.depth, self.text = 0, []

    def handle_starttag(self, tag, attrs):
        if self.depth or (tag == "aside" and ("class", "demo-note") in attrs):
            self.depth += 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)


def demo_note(html: str) -> str:
    parser = Notes()
    parser.feed(html)
    return " ".join(" ".join(parser.text).split())


def test_the_demo_page_says_it_is_a_generated_world_and_how_to_leave_it(client, db, settings):
    settings.DEMO = True
    note = demo_note(client.get("/").content.decode())
    assert "generated world" in note and "encoders/trained/" in note
    assert "CLIP_IMAGE_MODEL" in note and "CLIP_TEXT_MODEL" in note and "--demo" in note


def test_a_real_site_has_no_demo_note(client, db, settings):
    settings.DEMO = False
    assert demo_note(client.get("/").content.decode()) == ""
