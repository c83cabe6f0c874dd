"""The search box's query language (search/query.py): examples of its grammar and its properties (hypothesis).

Whatever the text, the parser answers a structure and a list of problems, never an exception; plain
text is one description; filters leave the text; the canonical form parses back to the same query.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gallery.models import Image
from search.query import GRAMMAR, HELP, ParsedQuery, Term, parse
from tests.factories import make_images
from tests.search.test_query_parsing import ANY_CHARACTER, NASTY, TEXT

FAST = settings(database=None, deadline=None, derandomize=True, max_examples=400)

# Text made mostly of the language's own characters, so its corners are reached often.
PIECES = st.sampled_from(
    [
        " ", "  ", "\t", "\u00a0", "+", "-", " + ", " - ", ":", "..", '"', "/", ".", "0", "1", "2", "12", "0.5",
        "2020", "-06", "1:", "2:", "0.5:", "x", "-31", "folder:", "type:", "taken:", "label:", "like:", "Folder:", "LIKE:", "heic", "jpg",
        "dog", "sunset", "beach", "a", "雪山", "Note", "http://x", "\u212a", "\x00",
    ]
)  # fmt: skip
LANGUAGE = st.lists(st.one_of(PIECES, st.text(ANY_CHARACTER, max_size=3)), max_size=25).map("".join)
ANY_QUERY = st.one_of(LANGUAGE, TEXT)

FILTER_NAMES = ("folder", "type", "taken", "label", "like")
# Ordinary words: no quote mark, no sign alone, not a filter's name and a value, not a weight.
WORD = st.text(st.characters(codec="utf-8", exclude_characters='"'), min_size=1, max_size=12).filter(
    lambda word: (
        word.strip() == word
        and not re.search(r"\s", word)
        and word not in ("+", "-")
        and not re.fullmatch(r"(?ai:folder|type|taken|label|like):.+", word, re.S)
        and not re.fullmatch(r"([0-9]+(\.[0-9]+)?|\.[0-9]+):.+", word, re.S)
    )
)
SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u3000"])


@FAST
@given(text=ANY_QUERY)
@example(text="")
@example(text='"')
@example(text='"+ x')
@example(text='folder:/"abc')
@example(text='label:"')
@example(text="2:like:abc")
@example(text="1e999:x")
@example(text="2:folder:x + 1:like:x")
@example(text="1:taken:2020 - 3:- + 2:12:30")
def test_any_text_parses_and_its_canonical_form_parses_back(text):
    parsed = parse(text)
    assert isinstance(parsed, ParsedQuery)
    for problem in parsed.problems:
        # Each problem points at a fragment of the text, where it is, and says why in words.
        assert 0 <= problem.position <= len(text)
        assert problem.fragment and problem.fragment in text[problem.position :]
        assert problem.reason.strip() and str(problem).startswith(f"“{problem.fragment}”")
    for term in parsed.terms:
        assert (term.image_id is None) != (term.text == "")
        assert 0.01 <= abs(term.weight) <= 100
        assert term.text == " ".join(term.text.split())
    canonical = str(parsed)
    again = parse(canonical)
    assert again == parsed, (canonical, again)
    assert str(again) == canonical
    # The canonical form has nothing left to complain about, but a query made only of excluded terms.
    assert all("only excluded" in problem.reason for problem in again.problems)


@FAST
@given(words=st.lists(WORD, min_size=1, max_size=8), spaces=st.data())
@example(words=["Note:", "3", "cats"], spaces=None)
@example(words=["12:30", "at", "the", "beach"], spaces=None)
@example(words=["http://x", "label:", "taken:"], spaces=None)
@example(words=["t-shirt", "+1", "-5°C", "a+b"], spaces=None)
def test_plain_text_is_one_description(words, spaces):
    gaps = [spaces.draw(SPACE) for _ in range(len(words) + 1)] if spaces else [" "] * (len(words) + 1)
    text = gaps[0] + "".join(word + gap for word, gap in zip(words, gaps[1:], strict=True))
    parsed = parse(text)
    assert parsed.terms == (Term(1.0, text=" ".join(words)),)
    assert parsed.description == " ".join(text.split())
    assert not parsed.problems and not parsed.has_filters and not parsed.keywords
    assert str(parsed) == " ".join(text.split())


@FAST
@given(
    before=st.lists(WORD, max_size=3),
    after=st.lists(WORD, max_size=3),
    folder=st.text(st.characters(codec="utf-8", exclude_characters='"/', exclude_categories=["Z", "Cc"]), min_size=1),
    year=st.integers(1, 9999),
    month=st.integers(1, 12),
    label=WORD,
    keyword=st.text(st.characters(codec="utf-8", exclude_characters='"'), min_size=1).filter(str.strip),
)
def test_filters_and_quotes_leave_the_text(before, after, folder, year, month, label, keyword):
    taken = f"taken:{year:04d}..{year:04d}-{month:02d}"
    text = " ".join([*before, f"folder:{folder}", "type:HEIC", taken, f"label:{label}", f'"{keyword}"', *after])
    parsed = parse(text)
    assert not parsed.problems
    words = " ".join([*before, *after])
    assert parsed.terms == ((Term(1.0, text=words),) if words else ())
    assert parsed.folder == folder.strip()
    assert parsed.format == "HEIF"
    last_day = calendar.monthrange(year, month)[1]
    assert (parsed.taken_from, parsed.taken_to) == (dt.date(year, 1, 1), dt.date(year, month, last_day))
    assert parsed.labels == (label,)
    assert parsed.keywords == (keyword.strip(),)


@FAST
@given(
    weights=st.lists(st.decimals(min_value="0.01", max_value="100", places=2), min_size=1, max_size=4),
    signs=st.lists(st.sampled_from("+-"), min_size=4, max_size=4),
    words=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=4, max_size=4),
)
def test_weights_and_signs(weights, signs, words):
    parts = []
    for index, weight in enumerate(weights):
        if index or signs[index] == "-":
            parts.append(signs[index])
        parts.append(f"{weight}:{words[index]}")
    parsed = parse(" ".join(parts))
    expected = tuple(
        Term(float(weight) * (-1 if (index or signs[index] == "-") and signs[index] == "-" else 1), text=words[index])
        for index, weight in enumerate(weights)
    )
    assert parsed.terms == expected
    assert bool(parsed.problems) == all(term.weight < 0 for term in expected)


@pytest.mark.parametrize(
    "text, terms",
    [
        ("a red bicycle by the sea", [(1, "a red bicycle by the sea")]),
        ("sunset + beach - people", [(1, "sunset"), (1, "beach"), (-1, "people")]),
        ("2:sunset + 0.5:beach", [(2, "sunset"), (0.5, "beach")]),
        ("like:123 - 2:like:7", [(1, 123), (-2, 7)]),
        ("3:sunset sky + like:5 at night", [(3, "sunset sky"), (1, 5), (1, "at night")]),
        ("Note: 3 cats", [(1, "Note: 3 cats")]),
        ("12:30 at the beach", [(1, "12:30 at the beach")]),
        ("see http://x or mailto:a", [(1, "see http://x or mailto:a")]),
        ("t-shirt -5°C", [(1, "t-shirt -5°C")]),
        ("label: dog", [(1, "label: dog")]),  # a space after the colon: text
    ],
)
def test_terms(text, terms):
    parsed = parse(text)
    assert not parsed.problems
    assert [(term.weight, term.image_id or term.text) for term in parsed.terms] == terms


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("taken:2020", dt.date(2020, 1, 1), dt.date(2020, 12, 31)),
        ("taken:2020-02", dt.date(2020, 2, 1), dt.date(2020, 2, 29)),
        ("taken:2021-02", dt.date(2021, 2, 1), dt.date(2021, 2, 28)),
        ("taken:2020-01..2021-06", dt.date(2020, 1, 1), dt.date(2021, 6, 30)),
        ("taken:2020-03-04", dt.date(2020, 3, 4), dt.date(2020, 3, 4)),
        ("taken:2020..", dt.date(2020, 1, 1), None),
        ("TAKEN:..2021-06", None, dt.date(2021, 6, 30)),
        ('taken:"2019"', dt.date(2019, 1, 1), dt.date(2019, 12, 31)),
    ],
)
def test_taken(text, start, end):
    parsed = parse(f"cats {text}")
    assert not parsed.problems and parsed.description == "cats"
    assert (parsed.taken_from, parsed.taken_to) == (start, end)


def test_every_filter_together():
    parsed = parse('"IMG_12" cats folder:2019/holidays/ type:jpg label:dog label:"hot air balloon" folder:"my trip"')
    assert parsed.description == "cats"
    assert parsed.keywords == ("IMG_12",)
    assert parsed.folder == "my trip"  # the last one, and a problem says so
    assert [problem.fragment for problem in parsed.problems] == ['folder:"my trip"']
    assert parsed.format == "JPEG"
    assert parsed.labels == ("dog", "hot air balloon")
    assert str(parsed) == 'cats "IMG_12" folder:"my trip" type:jpeg label:dog label:"hot air balloon"'


@pytest.mark.parametrize(
    "text, fragment, position, words, understood",
    [
        ("cats type:bmpx", "type:bmpx", 5, "not a format", "cats"),
        ("cats taken:2020-02-30", "taken:2020-02-30", 5, "not a date that exists", "cats"),
        ("cats taken:2021..2020", "taken:2021..2020", 5, "ends before it starts", "cats"),
        ("cats taken:yesterday", "taken:yesterday", 5, "not a date", "cats"),
        ("cats taken:..", "taken:..", 5, "needs a date", "cats"),
        ("cats like:abc", "like:abc", 5, "number of an image", "cats"),
        ("cats like:0", "like:0", 5, "number of an image", "cats"),
        ('cats "IMG_12', '"IMG_12', 5, "not closed", "cats IMG_12"),
        ("cats folder:/", "folder:/", 5, "names no folder", "cats"),
        ("cats + + dogs", "+", 7, "two signs in a row", "cats + dogs"),
        ("cats +", "+", 5, "no term after it", "cats"),
        ("0:cats", "0:cats", 0, "a weight is between", "cats"),
        ("  - people - cars", "- people - cars", 2, "only excluded terms", "- people - cars"),
    ],
)
def test_problems_point_at_the_fragment_and_the_rest_is_understood(text, fragment, position, words, understood):
    parsed = parse(text)
    assert len(parsed.problems) == 1, parsed.problems
    problem = parsed.problems[0]
    assert (problem.fragment, problem.position) == (fragment, position)
    assert words in problem.reason
    assert str(parsed) == understood


def test_the_grammar_is_documented():
    assert "query" in GRAMMAR and "filter" in GRAMMAR and "like" in GRAMMAR
    for name in FILTER_NAMES:
        assert f"{name}:" in GRAMMAR and f"{name}:" in HELP
    assert "+" in HELP and '"' in HELP


@FAST
@given(text=st.sampled_from(NASTY))
def test_nasty_text_is_text(text):
    parsed = parse(text)
    assert parse(str(parsed)) == parsed


@settings(FAST, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=LANGUAGE)
@example(q='cats "IMG type:bmpx like:0 taken:2020-13 - - + label:dog')
@example(q="- a - b")
@example(q="cats - cats")
@pytest.mark.django_db
def test_the_api_and_the_page_answer_any_query(client, q):
    if not Image.objects.exists():
        make_images(4, folder="holidays")
    response = client.get("/api/search", {"q": q})
    assert response.status_code in (200, 400), response.content
    body = response.json()
    if response.status_code == 200:
        assert {"results", "next", "facets"} <= set(body) <= {"results", "next", "facets", "problems"}
        assert body.get("problems", ["x"]) and all(isinstance(problem, str) for problem in body.get("problems", []))
    else:
        assert set(body) == {"error"} and body["error"].strip()
    assert client.get("/", {"q": q}).status_code in (200, 400)
