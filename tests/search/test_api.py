"""The JSON API's contract: shapes, order, paging, filters and every error, on the real database and models."""

import numpy as np
import pytest
from django.test import Client

from encoders import embeddings
from gallery.models import Image
from tests.factories import upload
from tests.search.ranking import as_compared, cosine, exact_ranking, vector_of

pytestmark = pytest.mark.django_db

RESULT_KEYS = {"id", "score", "url", "thumbnail_url", "path", "width", "height", "labels"}


def follow(client, first_response, *, post=None) -> list[list[dict]]:
    """Every page, following ``next`` from the first response to the end."""
    pages, body = [], first_response.json()
    while True:
        pages.append(body["results"])
        if body["next"] is None:
            return pages
        response = client.post(body["next"], post()) if post else client.get(body["next"])
        assert response.status_code == 200, response.content
        body = response.json()


def assert_error(response, status: int, *words: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"], body["error"]


def test_text_search_answers_the_contract(client, collection):
    q = "a red bicycle by the sea"
    response = client.get("/api/search", {"q": q})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next", "facets"}
    results = body["results"]
    assert len(results) == 20  # the default limit
    assert all(set(result) == RESULT_KEYS for result in results)
    by_id = {image.pk: image for image in collection}
    for result in results:
        image = by_id[result["id"]]
        assert result["url"] == image.file.url and result["thumbnail_url"] == image.thumbnail.url
        assert result["thumbnail_url"].startswith("/media/thumbnails/")
        assert (result["path"], result["width"], result["height"]) == (image.path, 320, 240)
    # Ordered by score, and the score is the cosine similarity: the ground truth from numpy.
    query = embeddings.encode_text(q)
    assert [r["id"] for r in results] == exact_ranking(query)[:20]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    expected = [cosine(vector_of(by_id[r["id"]]), as_compared(query)) for r in results]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert body["next"].startswith("http://testserver/api/search?")


def test_paging_follows_next_to_the_end_in_order_without_repeats(client, collection):
    pages = follow(client, client.get("/api/search", {"q": "Berge mit Schnee", "limit": 7}))
    assert [len(page) for page in pages] == [7] * 7 + [6]
    ids = [r["id"] for page in pages for r in page]
    assert len(ids) == len(set(ids)) == 55
    assert ids == exact_ranking(embeddings.encode_text("Berge mit Schnee"))
    scores = [r["score"] for page in pages for r in page]
    assert scores == sorted(scores, reverse=True)
    # An offset without the cursor is a plain offset.
    third = client.get("/api/search", {"q": "Berge mit Schnee", "limit": 7, "offset": 14}).json()["results"]
    assert [r["id"] for r in third] == ids[14:21]


@pytest.mark.parametrize(
    "q",
    ["ein roter Hund am Strand", "雪山和蓝天", "صورة قطة نائمة على الأريكة"],
    ids=["german", "chinese", "arabic"],
)
def test_queries_in_any_language_run_end_to_end(client, collection, q):
    response = client.get("/api/search", {"q": q, "limit": 10})
    assert response.status_code == 200
    ids = [r["id"] for r in response.json()["results"]]
    assert ids == exact_ranking(embeddings.encode_text(q))[:10]


def test_limit_is_capped_at_100_and_paging_is_validated(client, collection):
    assert_error(client.get("/api/search", {"q": "cat", "limit": 101}), 400, "limit", "100")
    assert_error(client.get("/api/search", {"q": "cat", "limit": 0}), 400, "limit")
    assert_error(client.get("/api/search", {"q": "cat", "offset": -1}), 400, "offset")
    assert_error(client.get("/api/search", {"q": "cat", "after": "nonsense"}), 400, "after")
    everything = client.get("/api/search", {"q": "cat", "limit": 100}).json()
    assert len(everything["results"]) == 55 and everything["next"] is None


@pytest.mark.parametrize(
    "params", [{"q": ""}, {"q": "   "}, {}, {"q": "x" * 501}], ids=["empty", "blank", "missing", "long"]
)
def test_empty_missing_and_overlong_queries_are_400(client, collection, params):
    assert_error(client.get("/api/search", params), 400)


def test_an_empty_collection_answers_no_results(client):
    assert client.get("/api/search", {"q": "anything"}).json() == {"results": [], "next": None, "facets": []}


def test_filters_narrow_the_search(client, collection):
    def ids(**params):
        response = client.get("/api/search", {"q": "people at a market", "limit": 100, **params})
        assert response.status_code == 200, response.content
        return [r["path"] for r in response.json()["results"]]

    assert len(ids(path_prefix="holidays/")) == 45
    assert all(path.startswith("holidays/2024/") for path in ids(path_prefix="holidays/2024/"))
    assert len(ids(path_prefix="holidays/2024/")) == 15
    assert ids(format="webp") == [p for p in ids() if p.startswith("work/")]
    # Dates are inclusive days: 2024-06-03..2024-06-05 holds the 3rd, 4th and 5th PNG.
    assert sorted(ids(date_from="2024-06-03", date_to="2024-06-05")) == [
        f"holidays/2024/photo_{seed:04d}.png" for seed in (32, 33, 34)
    ]
    assert ids(path_prefix="nowhere/") == []
    assert_error(client.get("/api/search", {"q": "x", "date_from": "yesterday"}), 400, "date_from")


def test_filtered_search_returns_full_pages(client, collection):
    pages = follow(client, client.get("/api/search", {"q": "a cat", "limit": 8, "path_prefix": "holidays/2023/"}))
    assert [len(page) for page in pages] == [8, 8, 8, 6]
    paths = [r["path"] for page in pages for r in page]
    assert len(set(paths)) == 30 and all(p.startswith("holidays/2023/") for p in paths)


def test_image_search_finds_the_image_without_csrf_and_stores_nothing(collection, media_root, settings, tmp_path):
    # With Django's defaults an upload this size would be written to a temporary file.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    files_before = sorted(media_root.rglob("*"))
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/search/image", {"image": upload(7)})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert len(results) == 20
    assert results[0]["id"] == collection[7].pk and results[0]["score"] > 0.99
    assert Image.objects.count() == 55
    assert sorted(media_root.rglob("*")) == files_before
    assert list(tmp_path.iterdir()) == []


def test_image_search_takes_paging_and_filters_and_next_continues(client, collection):
    fields = {"limit": 6, "format": "PNG"}
    first = client.post("/api/search/image", {"image": upload(31), **fields})
    assert first.status_code == 200, first.content
    assert first.json()["results"][0]["id"] == collection[31].pk
    pages = follow(client, first, post=lambda: {"image": upload(31)})
    assert [len(page) for page in pages] == [6, 6, 3]
    paths = [r["path"] for page in pages for r in page]
    assert len(set(paths)) == 15 and all(p.endswith(".png") for p in paths)


def test_unreadable_empty_and_missing_images_are_400(client, collection):
    not_image = upload(b"just some text, not a picture", "notes.jpg")
    assert_error(client.post("/api/search/image", {"image": not_image}), 400, "cannot be read")
    assert_error(client.post("/api/search/image", {"image": upload(b"", "e.jpg")}), 400)
    assert_error(client.post("/api/search/image", {}), 400, "image")
    assert Image.objects.count() == 55


@pytest.mark.parametrize("size", [40_000, 400_000], ids=["while-reading", "from-content-length"])
def test_over_size_upload_is_413(client, collection, settings, size):
    settings.UPLOAD_MAX_BYTES = 20_000
    big = upload(b"\xff" * size, "big.jpg")
    assert_error(client.post("/api/search/image", {"image": big}), 413, "larger than")


def test_similar_excludes_the_image_and_pages_through_its_neighbours(client, collection):
    image = collection[12]
    first = client.get(f"/api/images/{image.pk}/similar", {"limit": 10})
    assert first.status_code == 200
    pages = follow(client, first)
    ids = [r["id"] for page in pages for r in page]
    assert image.pk not in ids
    assert ids == [pk for pk in exact_ranking(vector_of(image)) if pk != image.pk]
    assert len(set(ids)) == 54


def test_similar_to_an_unknown_or_unembedded_image_is_404(client, collection):
    assert_error(client.get("/api/images/999999/similar"), 404, "999999")
    pending = Image.objects.create(sha256="p" * 64, file="images/p.jpg", state=Image.State.PENDING)
    assert_error(client.get(f"/api/images/{pending.pk}/similar"), 404)


def test_a_model_that_cannot_load_is_503_and_similar_still_works(client, collection, settings, tmp_path):
    settings.CLIP_TEXT_MODEL = str(tmp_path / "missing-text-model")
    settings.CLIP_IMAGE_MODEL = str(tmp_path / "missing-image-model")
    assert_error(client.get("/api/search", {"q": "cat"}), 503, "CLIP_TEXT_MODEL")
    assert_error(client.post("/api/search/image", {"image": upload(1)}), 503, "CLIP_IMAGE_MODEL")
    assert client.get(f"/api/images/{collection[0].pk}/similar").status_code == 200


def test_openapi_describes_the_endpoints_and_the_limit_cap(client):
    schema = client.get("/api/openapi.json").json()
    assert {"/api/search", "/api/search/image", "/api/images/{image_id}/similar"} <= set(schema["paths"])
    search = schema["paths"]["/api/search"]["get"]
    limit = next(p for p in search["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 100 and limit["schema"]["default"] == 20
    assert {"200", "400", "503"} <= set(search["responses"])
    assert {"200", "400", "413", "503"} <= set(schema["paths"]["/api/search/image"]["post"]["responses"])
    assert "404" in schema["paths"]["/api/images/{image_id}/similar"]["get"]["responses"]
    assert client.get("/api/docs").status_code == 200


def test_server_timing_says_where_the_time_went(client, collection):
    response = client.get("/api/search", {"q": "a red car"})
    timing = response["Server-Timing"]
    assert "encode;dur=" in timing and "db;dur=" in timing


def test_search_can_require_a_login(client, admin_client, collection, settings):
    settings.SEARCH_REQUIRES_LOGIN = True
    assert_error(client.get("/api/search", {"q": "cat"}), 401)
    assert_error(client.post("/api/search/image", {"image": upload(1)}), 401)
    assert_error(client.get(f"/api/images/{collection[0].pk}/similar"), 401)
    assert admin_client.get("/api/search", {"q": "cat"}).status_code == 200


def test_an_image_without_a_thumbnail_is_its_own_thumbnail(client, collection):
    Image.objects.filter(pk=collection[5].pk).update(thumbnail="")
    results = client.get(f"/api/images/{collection[4].pk}/similar", {"limit": 100}).json()["results"]
    (result,) = [r for r in results if r["id"] == collection[5].pk]
    assert result["thumbnail_url"] == result["url"] == collection[5].file.url
