"""tests/markup.py reads pages as a browser does: attribute order, quoting and entities do not matter."""

import pytest

from tests.markup import form_fields, links, one, result_ids, select

PAGE = """<!doctype html>
<nav class="walk"><ol>
  <li><a href="/?q=a&amp;similar=1">first</a></li>
  <li><img src="/t/1.webp" alt=""><span>Similar to <a title="x" class="anchor-link" href='/images/2/'>two</a></span></li>
</ol></nav>
<ul class="results">
  <li class="result"><a data-id="7" href="/images/7/" class="open"><img src="/t/7.webp"></a>
    <span title="cosine" class="score">0.91</span><a class="similar extra" href="/?similar=7">Similar</a></li>
  <li class="result"><a class="open" href="/images/3/" data-id="3"><img src="/t/3.webp"/></a></li>
</ul>
<a class="more-button" rel="next" href="/?q=a&amp;offset=24">More results</a>
<form method="post" class="more-form"><input type="hidden" value="tok" name="csrfmiddlewaretoken">
  <input name="offset" type="hidden" value="24"><input name="empty" value=""><button name="go">More</button></form>
<details open class="filters"></details>
"""


def test_elements_are_found_whatever_the_order_of_their_attributes():
    assert result_ids(PAGE) == [7, 3]
    assert links(PAGE, "similar") == ["/?similar=7"]  # one class among several
    assert links(PAGE, "more-button") == ["/?q=a&offset=24"]  # entities decoded
    assert one(PAGE, "a.anchor-link").get("href") == "/images/2/"
    assert "open" in one(PAGE, "details.filters").attrs


def test_selectors_nest_and_text_is_read_as_shown():
    assert [a.text for a in select(PAGE, "nav.walk a[href]")] == ["first", "two"]
    assert one(PAGE, "a.anchor-link").parent.text == "Similar to two"
    assert [span.text for span in select(PAGE, ".result span.score")] == ["0.91"]
    # <img> has no end tag: what follows it is its sibling, not its child.
    assert [span.parent.tag for span in select(PAGE, "span.score")] == ["li"]
    assert [img.get("src") for img in select(PAGE, "li.result a.open img")] == ["/t/7.webp", "/t/3.webp"]
    assert len(select(PAGE, "img")) == 3
    assert select(PAGE, "nav.walk span.score") == []


def test_form_fields_are_its_named_inputs():
    fields = form_fields(PAGE, "more-form")
    assert fields == {"csrfmiddlewaretoken": "tok", "offset": "24", "empty": ""}


def test_one_insists_on_exactly_one():
    with pytest.raises(AssertionError, match="2 elements match"):
        one(PAGE, "li.result")
    with pytest.raises(AssertionError, match="0 elements match"):
        one(PAGE, "table")
    with pytest.raises(ValueError, match="unsupported selector"):
        select(PAGE, "ul > li")
