"""Every search is answered by the HNSW index; filtered searches fill their pages; deep paging never repeats.

3000 rows and ANALYZE, so the planner prefers the index as it does on a real collection
(on a handful of rows a sequential scan is cheaper and would be chosen).
"""

import datetime as dt

import numpy as np
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from encoders import embeddings
from gallery.models import Image
from search import selectors
from tests.factories import photo

ROWS = 3000
HNSW = "Index Scan using gallery_image_embedding_hnsw"


def _unit_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 512)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def big_collection(django_db_setup, django_db_blocker):
    """3000 rows: half JPEG, half PNG; a tenth in the folder "rare/"; a day apart from 2020-01-01."""
    start = timezone.make_aware(dt.datetime(2020, 1, 1))
    vectors = _unit_vectors(ROWS, seed=0)
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        # Building the index once over the rows is much faster than growing it row by row.
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'gallery_image_embedding_hnsw'")
        (indexdef,) = cursor.fetchone()
        cursor.execute("DROP INDEX gallery_image_embedding_hnsw")
        Image.objects.bulk_create(
            Image(
                sha256=f"{i:064x}",
                file=f"images/{i}.jpg",
                path=f"{'rare' if i % 10 == 0 else 'common'}/{i}.jpg",
                format="JPEG" if i % 2 else "PNG",
                taken_at=start + dt.timedelta(days=i),
                embedding=v,
                state="embedded",
                encoder="m",
            )
            for i, v in enumerate(vectors)
        )
        cursor.execute(indexdef)
        cursor.execute("ANALYZE gallery_image")
        yield {row.pk: vectors[i] for i, row in enumerate(Image.objects.order_by("sha256"))}
        # TRUNCATE, not DELETE: it empties the index too, so later tests plan on a fresh one.
        cursor.execute("TRUNCATE gallery_image CASCADE")  # and its labels (gallery_imagelabel)


def plan_of(search) -> str:
    """Run ``search()``, then replay the statements it sent with EXPLAIN before its ranking query."""
    with CaptureQueriesContext(connection) as captured:
        search()
    statements = [query["sql"] for query in captured.captured_queries]
    ranking = [i for i, sql in enumerate(statements) if sql.startswith("WITH nearest")][-1]
    settings = [sql for sql in statements[:ranking] if "set_config" in sql][-1]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(settings)
        cursor.execute("EXPLAIN " + statements[ranking])
        return "\n".join(row[0] for row in cursor.fetchall())


def exact_ids(query: np.ndarray, vectors: dict[int, np.ndarray], *, keep=lambda pk: True) -> list[int]:
    ids = [pk for pk in vectors if keep(pk)]
    scores = np.stack([vectors[pk] for pk in ids]) @ (query / np.linalg.norm(query))
    return [ids[i] for i in np.argsort(-scores, kind="stable")]


@pytest.mark.django_db
def test_text_image_similar_and_filtered_searches_run_on_the_hnsw_index(big_collection, monkeypatch):
    # On a real collection "small" is a small share of it; here, 1317 of 3000 rows is not.
    monkeypatch.setattr(selectors, "EXACT_SEARCH_MAX_ROWS", 300)
    some = Image.objects.embedded().first()
    searches = {
        "text": lambda: selectors.image_search_by_text("ein roter Hund am Strand", limit=24),
        "image": lambda: selectors.image_search_by_vector(embeddings.encode_images([photo(3)])[0], limit=24),
        "similar": lambda: selectors.image_search_similar(some, limit=24),
        "filtered": lambda: selectors.image_search_by_text(
            "雪山", limit=24, filters=selectors.ImageFilters(format="png", date_from=dt.date(2021, 1, 1))
        ),
        "fourth page": lambda: selectors.image_search_by_text("قطة نائمة", limit=24, offset=72),
    }
    for name, search in searches.items():
        plan = plan_of(search)
        assert HNSW in plan, f"{name}:\n{plan}"


@pytest.mark.django_db
def test_ef_search_covers_the_page_within_a_cap(big_collection, settings):
    settings.HNSW_EF_SEARCH = 100
    query = _unit_vectors(1, seed=9)[0]
    # A page of 24 is fetched with one row more, which says whether there is a next page.
    for offset, expected in ((0, 100), (200, 225), (990, 1000)):
        with CaptureQueriesContext(connection) as captured:
            selectors.image_search_by_vector(query, limit=24, offset=offset)
        sql = next(q["sql"] for q in captured.captured_queries if "set_config" in q["sql"])
        assert f"'hnsw.ef_search', '{expected}'" in sql


@pytest.mark.django_db
def test_a_small_filtered_set_is_searched_exactly(big_collection):
    query = _unit_vectors(1, seed=5)[0]
    filters = selectors.ImageFilters(path_prefix="rare/", format="PNG")  # 300 rows
    results = selectors.image_search_by_vector(query, limit=24, filters=filters).results
    rare = set(Image.objects.filter(path__startswith="rare/", format="PNG").values_list("pk", flat=True))
    assert [image.pk for image in results] == exact_ids(query, big_collection, keep=rare.__contains__)[:24]
    plan = plan_of(lambda: selectors.image_search_by_vector(query, limit=24, filters=filters))
    assert "gallery_image_embedding_hnsw" not in plan, plan


@pytest.mark.django_db
def test_a_narrow_filter_on_the_index_still_fills_its_pages(big_collection, monkeypatch, settings):
    # Force the index path for the 10% in "rare/": without iterative scans, ef_search=100
    # candidates hold about 10 of them, and the page would come back with 10, not 24.
    settings.HNSW_EF_SEARCH = 100
    monkeypatch.setattr(selectors, "EXACT_SEARCH_MAX_ROWS", 10)
    query = _unit_vectors(1, seed=6)[0]
    filters = selectors.ImageFilters(path_prefix="rare")
    assert HNSW in plan_of(lambda: selectors.image_search_by_vector(query, limit=24, filters=filters))
    rare = set(Image.objects.filter(path__startswith="rare").values_list("pk", flat=True))
    truth = exact_ids(query, big_collection, keep=rare.__contains__)
    seen = []
    after = None
    for page in range(4):
        with CaptureQueriesContext(connection) as captured:
            found = selectors.image_search_by_vector(query, limit=24, offset=24 * page, after=after, filters=filters)
        results = found.results
        assert len(results) == 24 and found.next_offset == 24 * (page + 1)
        # ... from the index alone: no exact search had to step in.
        assert sum(q["sql"].startswith("WITH nearest") for q in captured.captured_queries) == 1
        assert all(image.path.startswith("rare/") for image in results)
        distances = [image.distance for image in results]
        assert distances == sorted(distances)
        seen += [image.pk for image in results]
        after = found.next
    assert len(set(seen)) == len(seen) == 96
    assert len(set(seen) & set(truth[:96])) >= 0.9 * 96


@pytest.mark.django_db
def test_paging_deep_never_repeats_and_stays_in_order(big_collection):
    # Uniform random vectors are the hardest case for HNSW: each page raises ef_search and
    # finds images the previous pages missed. The cursor keeps them from shifting a page back.
    query = _unit_vectors(1, seed=7)[0]
    seen, scores, after = [], [], None
    for page in range(10):
        found = selectors.image_search_by_vector(query, limit=100, offset=100 * page, after=after)
        assert len(found.results) == 100
        seen += [image.pk for image in found.results]
        scores += [image.score for image in found.results]
        after = found.next
    # Paging stops at SEARCH_MAX_DEPTH, with 2000 rows still unseen.
    assert after is None and found.next_offset is None
    assert selectors.image_search_by_vector(query, limit=100, offset=1000).results == []
    assert len(set(seen)) == len(seen) == 1000
    assert scores == sorted(scores, reverse=True)
    recall = len(set(seen) & set(exact_ids(query, big_collection)[:1000])) / 1000
    assert recall >= 0.9, recall
