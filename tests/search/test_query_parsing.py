"""Whatever text arrives, the query parsing answers with a result or a clear refusal, never an exception (hypothesis).

Text from every script, control characters and NUL, SQL, template syntax, markup and very long
strings, through the form, the paging cursor, the query-vector token, the API and the page.
"""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.utils.html import escape
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gallery.models import Image
from search.forms import MAX_QUERY_LENGTH, MAX_TRAIL, SearchForm, vector_from_token, vector_to_token
from search.selectors import Cursor
from tests.factories import make_images

# Repeatable (derandomized), with no example database written into the repository.
FAST = settings(database=None, deadline=None, derandomize=True, max_examples=200)
# Through the test client (the real views, the database, the text model): fewer examples.
CLIENT = settings(FAST, max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])

NASTY = [
    "'; DROP TABLE gallery_image; --",
    "' OR 1=1 --",
    "{{ x }}{% if %}",
    "{% load static %}{{ request.META }}{# x",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "\x00",
    "a\x00b",
    "\r\n\t\x0b\x0c\x1b[31m",
    "\u202egnp.exe",  # right-to-left override
    "\ufeff\u200b\u00a0",  # BOM, zero-width space, no-break space
    "Ａ𝔸𝕒ℌ",  # fullwidth and mathematical letters
    "²³¹٣۳߃१",  # digits that are not ASCII
    "👩‍👩‍👧‍👦🏳️‍🌈",
    "雪山 Hund am Strand قطة נמר кошка ねこ 고양이 बिल्ली",
    "NaN_1",
    "inf_1",
    "1e308_9223372036854775808",
    "9999-12-31",
]
# Every code point a URL can carry (surrogates cannot be encoded as UTF-8, so no request holds one).
ANY_CHARACTER = st.characters(codec="utf-8")
TEXT = st.one_of(
    st.text(ANY_CHARACTER, max_size=60),
    st.sampled_from(NASTY),
    st.tuples(st.text(ANY_CHARACTER, max_size=8), st.sampled_from(NASTY), st.text(ANY_CHARACTER, max_size=8)).map(
        "".join
    ),
    # Very long: around the 500-character limit and far over it.
    st.tuples(st.text(ANY_CHARACTER, min_size=1, max_size=3), st.integers(150, 3000)).map(lambda t: t[0] * t[1]),
)
DATES = st.one_of(st.dates().map(lambda day: day.isoformat()), TEXT)
FORM_FIELDS = ("q", "folder", "date_from", "date_to", "format", "similar", "trail", "offset", "after")


@pytest.fixture
def images(db):
    return make_images(6, folder="holidays")


# (a) The form


@FAST
@given(data=st.dictionaries(st.sampled_from(FORM_FIELDS), st.one_of(TEXT, DATES), max_size=len(FORM_FIELDS)))
@example(data={"trail": "²"})  # a digit that int() refuses: was a 500 on the page
@example(data={"q": "cat", "date_to": "9999-12-31"})  # the day after it does not exist: was a 500
@example(data={"q": "a\x00b"})
@example(data={"folder": "\x00"})
@pytest.mark.django_db
def test_search_form_is_valid_or_says_why(data):
    form = SearchForm(data)
    if not form.is_valid():
        messages = [message for errors in form.errors.values() for message in errors]
        assert messages and all(isinstance(message, str) and message.strip() for message in messages)
        return
    cleaned = form.cleaned_data
    q = cleaned["q"]
    assert len(q) <= MAX_QUERY_LENGTH and q == q.strip() and "\x00" not in q
    assert all(isinstance(pk, int) and pk >= 0 for pk in cleaned["trail"]) and len(cleaned["trail"]) <= MAX_TRAIL
    after = cleaned["after"]
    assert after is None or (math.isfinite(after.distance) and after.id >= 1)
    params = form.filter_params()
    assert all(isinstance(value, str) and "\x00" not in value for value in params.values())
    # The filters the form lets through make a query the database runs.
    assert form.filters().apply(Image.objects.all()).count() == 0


# (b) The paging cursor


@FAST
@given(distance=st.floats(allow_nan=False, allow_infinity=False), pk=st.integers(1, 2**63 - 1))
def test_a_cursor_reads_back_as_itself(distance, pk):
    cursor = Cursor(distance, pk)
    assert Cursor.parse(str(cursor)) == cursor
    assert len(str(cursor)) <= 64  # what the form and the API accept


@FAST
@given(text=TEXT)
@example(text="nan_1")
@example(text="-inf_1")
@example(text="0.5_0")
@example(text="0.5_-3")
@example(text="0.5_1\x00")
@example(text="1e999_1")
def test_any_text_is_a_finite_cursor_or_a_value_error(text):
    try:
        cursor = Cursor.parse(text)
    except ValueError:
        return
    assert math.isfinite(cursor.distance) and cursor.id >= 1
    assert Cursor.parse(str(cursor)) == cursor


# (c) The query-vector token of "more results" after an image search


DIMENSIONS = django_settings.EMBEDDING_DIMENSIONS


@FAST
@given(data=st.data())
def test_a_vector_token_reads_back_as_the_unit_vector(data):
    vector = data.draw(
        arrays(np.float32, DIMENSIONS, elements=st.floats(-4, 4, width=32)).filter(
            lambda v: np.linalg.norm(v.astype(np.float64)) > 1e-3
        )
    )
    token = vector_to_token(vector)
    assert re.fullmatch(r"[A-Za-z0-9_=-]+", token)
    back = vector_from_token(token)
    expected = vector.astype(np.float64) / np.linalg.norm(vector.astype(np.float64))
    np.testing.assert_allclose(back, expected, rtol=1e-5, atol=1e-6)
    # A unit vector goes round unchanged.
    np.testing.assert_allclose(vector_from_token(vector_to_token(back)), back, rtol=1e-6, atol=1e-7)


def assert_unit_vector_or_value_error(token: str):
    try:
        vector = vector_from_token(token)
    except ValueError:
        return
    assert vector.shape == (DIMENSIONS,) and vector.dtype == np.float32
    assert np.all(np.isfinite(vector))
    assert abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-4


@FAST
@given(token=TEXT)
@example(token="")
@example(token="A" * 2732)
@example(token=base64.urlsafe_b64encode(bytes(4 * DIMENSIONS)).decode())  # the zero vector
def test_garbage_tokens_are_refused(token):
    assert_unit_vector_or_value_error(token)


@FAST
# Raw float32 bit patterns: NaN, infinities, the largest and the subnormal floats.
@given(bits=arrays(np.uint32, DIMENSIONS, elements=st.integers(0, 2**32 - 1)))
@example(bits=np.full(DIMENSIONS, 0x7F7FFFFF, dtype=np.uint32))  # the largest float32: its square overflows
@example(bits=np.full(DIMENSIONS, 0x00000001, dtype=np.uint32))  # the smallest: its square underflows
@example(bits=np.array([0x1E3CE508] + [0] * (DIMENSIONS - 1), dtype=np.uint32))  # 1e-20 alone
def test_tokens_of_any_float_bits_give_a_unit_vector_or_a_value_error(bits):
    token = base64.urlsafe_b64encode(bits.astype("<u4").tobytes()).decode()
    assert_unit_vector_or_value_error(token)


# (d) The API and the page


@CLIENT
@given(q=TEXT)
@example(q="a\x00b")
@example(q="x" * 501)
def test_api_text_search_answers_results_or_an_error(client, images, q):
    response = client.get("/api/search", {"q": q})
    assert response.status_code in (200, 400), response.content
    body = response.json()
    if response.status_code == 200:
        # "problems": what of the query language (search/query.py) was not understood.
        assert {"results", "next", "facets"} <= set(body) <= {"results", "next", "facets", "problems"}
    else:
        assert set(body) == {"error"} and body["error"]


@CLIENT
@given(
    params=st.fixed_dictionaries(
        {"q": TEXT},
        optional={"path_prefix": TEXT, "format": TEXT, "after": TEXT, "date_from": DATES, "date_to": DATES},
    )
)
@example(params={"q": "cat", "path_prefix": "\x00"})  # was a 500: PostgreSQL text cannot hold NUL
@example(params={"q": "cat", "format": "a\x00b"})
@example(params={"q": "cat", "date_to": "9999-12-31"})  # was a 500: no day after the last one
@example(params={"q": "cat", "date_from": "0001-01-01", "date_to": "0001-01-01"})
def test_api_filters_and_cursor_answer_results_or_an_error(client, images, params):
    response = client.get("/api/search", params)
    assert response.status_code in (200, 400), response.content
    body = response.json()
    assert set(body) - {"problems"} == ({"results", "next", "facets"} if response.status_code == 200 else {"error"})


@settings(CLIENT, max_examples=25)
@given(
    before=st.text(ANY_CHARACTER, max_size=20),
    markup=st.sampled_from(["<script>alert(1)</script>", '"><script>alert(1)</script>', "</title><script>x</script>"]),
    after=st.text(ANY_CHARACTER, max_size=20),
)
def test_the_page_echoes_the_query_escaped(client, images, before, markup, after):
    q = before + markup + after
    response = client.get("/", {"q": q})
    assert response.status_code in (200, 400)
    html = response.content.decode()
    assert "<script>alert(1)" not in html and "<script>x</script>" not in html
    if response.status_code == 200:
        assert escape(q.strip()) in html  # the query stays in the box, as text


@CLIENT
@given(data=st.dictionaries(st.sampled_from(FORM_FIELDS), st.one_of(TEXT, DATES), max_size=4))
@example(data={"trail": "²"})
@example(data={"q": "cat", "date_to": "9999-12-31"})
def test_the_page_answers_or_says_why(client, images, data):
    if "similar" in data and data["similar"].strip().isdecimal() and len(data["similar"]) < 6:
        data = {**data, "similar": str(images[int(data["similar"]) % len(images)].pk)}
    response = client.get("/", data)
    assert response.status_code in (200, 400, 404), response.status_code


@pytest.mark.parametrize("day", ["0", "1700000000", "2024-1-5", "20240105", "2024-02-30", "yesterday"])
def test_api_dates_are_days_written_as_the_schema_says(client, images, day):
    # pydantic alone would read a number as a Unix time: date_to=0 filtered to 1970-01-01.
    response = client.get("/api/search", {"q": "cat", "date_to": day})
    assert response.status_code == 400, response.content
    assert "date_to" in response.json()["error"]

    assert client.get("/api/search", {"q": "cat", "date_to": "2024-01-05"}).status_code == 200
