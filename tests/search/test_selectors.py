from types import SimpleNamespace

import pytest
from django.db import connection

from search import selectors
from tests.factories import make_images


@pytest.mark.django_db(transaction=True)
def test_search_settings_stay_inside_the_search_transaction(settings):
    settings.HNSW_EF_SEARCH = 100
    make_images(30)
    selectors.image_search_by_text("a cat", limit=24, offset=200)  # ef_search 224, iterative scan on
    selectors.image_search_by_text("a cat", limit=5, filters=selectors.ImageFilters(format="PNG"))  # exact
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan'),"
            " current_setting('enable_indexscan')"
        )
        assert cursor.fetchone() == ("40", "off", "on")  # pgvector's and PostgreSQL's defaults


def test_a_cursor_reads_back_what_it_wrote_and_nothing_else():
    cursor = selectors.Cursor(0.123456789012345678, 42)
    assert selectors.Cursor.parse(str(cursor)) == cursor
    for bad in ("", "0.5", "nan_3", "0.5_x", "0.5_0", "inf_2"):
        with pytest.raises(ValueError):
            selectors.Cursor.parse(bad)


def test_a_page_says_where_the_next_one_starts_and_paging_stops_at_the_depth_cap():
    rows = [SimpleNamespace(pk=pk, distance=pk / 100) for pk in range(1, 7)]
    page = selectors.SearchPage.of(rows, offset=40, limit=5)
    assert page.results == rows[:5] and (page.first_rank, page.last_rank) == (41, 45)
    assert page.next == selectors.Cursor(0.05, 5) and page.next_offset == 45
    # No row beyond the page: it is the last.
    end = selectors.SearchPage.of(rows[:5], offset=40, limit=5)
    assert end.next is None and end.next_offset is None
    # A page that ends at SEARCH_MAX_DEPTH is the last, whatever lies beyond.
    deepest = selectors.SearchPage.of(rows, offset=selectors.SEARCH_MAX_DEPTH - 5, limit=5)
    assert deepest.next is None and deepest.next_offset is None
