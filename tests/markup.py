"""Pages read as a browser reads them: parsed HTML and CSS-like selectors, never regular expressions.

Assertions on parsed elements hold whatever the order of attributes, the quoting or the spacing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Elements that never have children or an end tag (https://html.spec.whatwg.org/#void-elements).
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass(eq=False)  # elements are compared by identity: each is one place in the page
class Element:
    tag: str
    attrs: dict[str, str | None]
    parent: Element | None = field(default=None, repr=False)
    children: list[Element | str] = field(default_factory=list, repr=False)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    @property
    def text(self) -> str:
        """The text inside, entities decoded, whitespace collapsed."""
        parts = [child if isinstance(child, str) else child.text for child in self.children]
        return " ".join("".join(parts).split())

    def get(self, name: str) -> str | None:
        return self.attrs.get(name)

    def select(self, selector: str) -> list[Element]:
        """The descendants matching ``selector``, in document order: see ``select``."""
        steps = [_parse_step(step) for step in selector.split()]
        return [element for element in self._descendants() if _matches(element, steps)]

    def _descendants(self):
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child._descendants()


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#document", {})

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), parent=self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, dict(attrs), parent=self.current))

    def handle_endtag(self, tag):
        # Close up to the matching open element; a stray end tag closes nothing.
        element = self.current
        while element is not self.root and element.tag != tag:
            element = element.parent
        if element is not self.root:
            self.current = element.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


_STEP = re.compile(r"^(?P<tag>[\w-]+)?(?P<rest>(?:\.[\w-]+|\[[\w-]+(?:=[^\]]*)?\])*)$")
_PART = re.compile(r"\.(?P<cls>[\w-]+)|\[(?P<attr>[\w-]+)(?:=(?P<value>[^\]]*))?\]")


def _parse_step(step: str) -> tuple[str | None, set[str], dict[str, str | None]]:
    match = _STEP.match(step)
    if not match:
        raise ValueError(f"unsupported selector step: {step!r}")
    classes, attrs = set(), {}
    for part in _PART.finditer(match["rest"]):
        if part["cls"]:
            classes.add(part["cls"])
        else:
            attrs[part["attr"]] = part["value"].strip("\"'") if part["value"] is not None else None
    return match["tag"], classes, attrs


def _matches_step(element: Element, step) -> bool:
    tag, classes, attrs = step
    return (
        (tag is None or element.tag == tag)
        and classes <= element.classes
        and all(name in element.attrs and value in (None, element.attrs[name]) for name, value in attrs.items())
    )


def _matches(element: Element, steps) -> bool:
    """The last step matches the element, the others its ancestors in order (the descendant combinator)."""
    if not _matches_step(element, steps[-1]):
        return False
    remaining = steps[:-1]
    ancestor = element.parent
    while remaining and ancestor is not None:
        if _matches_step(ancestor, remaining[-1]):
            remaining = remaining[:-1]
        ancestor = ancestor.parent
    return not remaining


def select(html: str, selector: str) -> list[Element]:
    """The elements of ``html`` matching ``selector``, in document order.

    Selectors are the CSS subset tests need: ``tag``, ``.class``, ``[attr]``, ``[attr=value]``,
    combined (``a.open[data-id]``) and nested with spaces (``nav.walk a``).
    """
    return parse(html).select(selector)


def one(html: str, selector: str) -> Element:
    """The only element matching ``selector``: fails when there are none or several."""
    found = select(html, selector)
    assert len(found) == 1, f"{len(found)} elements match {selector!r}"
    return found[0]


def links(html: str, css_class: str) -> list[str]:
    """The hrefs of the links with class ``css_class``, entities decoded."""
    return [a.get("href") for a in select(html, f"a.{css_class}[href]")]


def result_ids(html: str) -> list[int]:
    """The ids of the search results shown, in order (each result's link that opens it)."""
    return [int(a.get("data-id")) for a in select(html, "a.open[data-id]")]


def form_fields(html: str, form_class: str) -> dict[str, str]:
    """The named inputs' values of the form with class ``form_class``."""
    form = one(html, f"form.{form_class}")
    return {field.get("name"): field.get("value") or "" for field in form.select("input[name]")}
