import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from encoders import embeddings
from gallery.models import Image
from tests.factories import upload, write_photos
from tests.markup import form_fields, links, one, result_ids, select
from tests.search.ranking import exact_ranking, vector_of

INDEX = "/"


@pytest.mark.django_db
def test_search_page_says_when_the_collection_is_empty(client):
    response = client.get(reverse("search:index"))
    assert response.status_code == 200
    assert "The collection is empty" in response.content.decode()
    assert "The collection is empty" in client.get(INDEX, {"q": "cat"}).content.decode()


@pytest.mark.django_db(transaction=True)
def test_search_page_renders_results_for_a_text_query(client, tmp_path):
    write_photos(tmp_path / "lib", 5)
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)
    response = client.get(reverse("search:index"), {"q": "ein roter Hund am Strand"})
    assert response.status_code == 200
    html = response.content.decode()
    assert len(select(html, ".result")) == 5
    assert "/media/thumbnails/" in html
    results = response.context["page"].results
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)


def test_landing_page_counts_the_collection_and_offers_examples(client, collection):
    html = client.get(INDEX).content.decode()
    assert "55 images to search." in html
    assert 'href="?q=ein+rotes+Auto"' in html


def test_an_empty_query_says_what_to_do(client, collection):
    response = client.get(INDEX, {"q": "  "})
    assert response.status_code == 200
    assert "Type a few words to search" in response.content.decode()


def test_an_overlong_query_is_a_message_on_the_page(client, collection):
    response = client.get(INDEX, {"q": "x" * 501})
    assert response.status_code == 400
    html = response.content.decode()
    assert "at most 500 characters" in html and 'id="text-search"' in html


@pytest.mark.parametrize("q", ["ein roter Hund am Strand", "雪山", "قطة نائمة"], ids=["german", "chinese", "arabic"])
def test_text_search_in_any_language_shows_a_ranked_grid_with_scores(client, collection, q):
    response = client.get(INDEX, {"q": q})
    assert response.status_code == 200
    html = response.content.decode()
    assert result_ids(html) == exact_ranking(embeddings.encode_text(q))[:24]
    scores = [span.text for span in select(html, "span.score")]
    assert len(scores) == 24 and all(re.fullmatch(r"\d\.\d\d", score) for score in scores)
    assert q in html  # the query stays in the box


def test_more_results_continue_in_order_without_repeats(client, collection):
    first = client.get(INDEX, {"q": "a dog running on the beach"})
    page = first.context["page"]
    assert (page.offset, page.next_offset, page.last_rank) == (0, 24, 24) and page.next is not None
    html = first.content.decode()
    ids = result_ids(html)
    while more := links(html, "more-button"):
        response = client.get(more[0])
        assert response.status_code == 200
        html = response.content.decode()
        ids += result_ids(html)
    assert ids == exact_ranking(embeddings.encode_text("a dog running on the beach"))
    assert "That is all." in html
    # The script asks for the fragment only.
    fragment = client.get(
        links(client.get(INDEX, {"q": "x"}).content.decode(), "more-button")[0], HTTP_X_PARTIAL="results"
    )
    body = fragment.content.decode()
    assert "<html" not in body and len(select(body, ".result")) == 24 and select(body, ".more")


def test_filters_on_the_page(client, collection):
    html = client.get(INDEX, {"q": "a cat", "folder": "/holidays/2024/"}).content.decode()
    paths = set(Image.objects.filter(pk__in=result_ids(html)).values_list("path", flat=True))
    assert len(paths) == 15 and all(p.startswith("holidays/2024/") for p in paths)
    assert "open" in one(html, "details.filters").attrs
    html = client.get(INDEX, {"q": "a cat", "date_from": "2022-03-02", "date_to": "2022-03-03"}).content.decode()
    assert sorted(Image.objects.filter(pk__in=result_ids(html)).values_list("path", flat=True)) == [
        "work/photo_0046.webp",
        "work/photo_0047.webp",
    ]
    html = client.get(INDEX, {"q": "a cat", "format": "WEBP"}).content.decode()
    assert len(result_ids(html)) == 10
    response = client.get(INDEX, {"q": "a cat", "folder": "holidays/2023", "format": "PNG"})
    assert response.status_code == 200 and "No images match these filters." in response.content.decode()
    response = client.get(INDEX, {"q": "a cat", "date_from": "2024-01-02", "date_to": "2024-01-01"})
    assert response.status_code == 400 and "The end date is before the start date." in response.content.decode()


def test_a_model_that_cannot_load_gets_a_message_not_an_error_page(client, collection, settings, tmp_path):
    settings.CLIP_TEXT_MODEL = str(tmp_path / "gone")
    response = client.get(INDEX, {"q": "cat"})
    assert response.status_code == 503
    html = response.content.decode()
    assert "Search is unavailable right now" in html and 'id="text-search"' in html
    assert str(tmp_path) not in html  # the details are for staff


def test_the_similar_walk_keeps_a_breadcrumb_and_a_way_back(client, collection):
    q = "mountains with snow"
    html = client.get(INDEX, {"q": q}).content.decode()
    first = result_ids(html)[0]
    # Step 1: similar to the first result.
    html = client.get(links(html, "similar")[0]).content.decode()
    ids = result_ids(html)
    anchor = Image.objects.get(pk=first)
    assert first not in ids
    assert ids == [pk for pk in exact_ranking(vector_of(anchor)) if pk != first][:24]
    anchor_link = one(html, "a.anchor-link")
    assert anchor_link.parent.text.startswith("Similar to") and anchor_link.get("href").startswith(f"/images/{first}/")
    # Step 2 and 3: on from there; the breadcrumb holds every image visited, each a way back.
    second = ids[0]
    html = client.get(links(html, "similar")[0]).content.decode()
    third = result_ids(html)[0]
    html = client.get(links(html, "similar")[0]).content.decode()
    crumbs = [a.get("href") for a in select(html, "nav.walk a[href]")]
    assert crumbs[0] == "/?q=mountains+with+snow"
    assert crumbs[1] == f"/?q=mountains+with+snow&similar={first}"
    assert crumbs[2] == f"/?q=mountains+with+snow&similar={second}&trail={first}"
    assert crumbs[3] == f"/images/{third}/?q=mountains+with+snow&trail={first}%2C{second}%2C{third}"  # where we are
    assert len(crumbs) == 4
    back = client.get(crumbs[2]).content.decode()
    assert result_ids(back)[0] == third
    # More results of a walk step continue it.
    more = client.get(links(html, "more-button")[0]).content.decode()
    assert not set(result_ids(more)) & set(result_ids(html))


def test_similar_to_an_image_that_is_gone_is_a_message(client, collection):
    response = client.get(INDEX, {"similar": 999999})
    assert response.status_code == 404
    assert "no longer in the collection" in response.content.decode()


def test_search_by_image_needs_csrf_finds_it_and_keeps_nothing(collection, media_root, settings, tmp_path):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    files_before = sorted(media_root.rglob("*"))
    client = Client(enforce_csrf_checks=True)
    assert client.post(INDEX, {"image": upload(3)}).status_code == 403
    token = select(client.get(INDEX).content.decode(), "input[name=csrfmiddlewaretoken]")[0].get("value")
    response = client.post(INDEX, {"csrfmiddlewaretoken": token, "image": upload(3), "folder": "holidays"})
    assert response.status_code == 200
    html = response.content.decode()
    ids = result_ids(html)
    assert ids[0] == collection[3].pk and len(ids) == 24
    assert 'src="data:image/jpeg;base64,' in html and "Your image was not kept." in html
    assert Image.objects.count() == 55
    assert sorted(media_root.rglob("*")) == files_before
    assert list(tmp_path.iterdir()) == []
    # "More results" posts the query's vector back, not the image.
    fields = form_fields(html, "more-form")
    assert set(fields) == {"csrfmiddlewaretoken", "vector", "offset", "after", "folder"}
    more = client.post(INDEX, fields).content.decode()
    rest = result_ids(more)
    assert len(rest) == 21 and not set(rest) & set(ids)
    assert "That is all." in more


def test_search_by_image_refuses_what_it_cannot_use(client, collection, settings):
    response = client.post(INDEX, {"image": upload(b"plain text", "a.jpg")})
    assert response.status_code == 400
    assert "That file cannot be searched with: not an image" in response.content.decode()
    response = client.post(INDEX, {"vector": "bm90IGEgdmVjdG9y"})
    assert response.status_code == 400 and "choose the image again" in response.content.decode()
    settings.UPLOAD_MAX_BYTES = 20_000
    for size in (40_000, 400_000):
        response = client.post(INDEX, {"image": upload(b"\xff" * size, "big.jpg")})
        assert response.status_code == 413
        assert "larger than 19.5\xa0KB" in response.content.decode()
    assert Image.objects.count() == 55


def test_an_image_page_shows_its_metadata_and_the_way_on(client, collection):
    image = collection[31]
    response = client.get(f"/images/{image.pk}/", {"q": "a cat", "trail": "1,2"})
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("holidays/2024/photo_0031.png", "320 × 240 px", "PNG", "2 June 2024", image.file.url):
        assert text in html, text
    assert f'href="/?q=a+cat&amp;trail=1%2C2&amp;similar={image.pk}"' in html
    assert 'href="/?folder=holidays%2F2024"' in html
    fragment = client.get(f"/images/{image.pk}/", HTTP_X_PARTIAL="image").content.decode()
    assert "<html" not in fragment and "Open original" in fragment
    assert client.get("/images/999999/").status_code == 404


def test_search_can_require_a_login(client, admin_client, collection, settings):
    settings.SEARCH_REQUIRES_LOGIN = True
    image_page = f"/images/{collection[0].pk}/"
    for response in (client.get(INDEX, {"q": "cat"}), client.post(INDEX, {"image": upload(3)}), client.get(image_page)):
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert admin_client.get(INDEX, {"q": "cat"}).context["mode"] == "text"
    assert admin_client.get(image_page).status_code == 200


def test_an_image_without_a_thumbnail_shows_its_file(client, collection):
    Image.objects.filter(pk=collection[5].pk).update(thumbnail="")
    response = client.get(INDEX, {"similar": collection[4].pk})
    shown = {image.pk: image for image in response.context["page"].results}
    assert shown[collection[5].pk].preview_url == collection[5].file.url
    assert f'<img src="{collection[5].file.url}"' in response.content.decode()
