"""The query language on the page and the API: filters from the box, combined terms, like:ID and the problems said."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings

from encoders import embeddings
from gallery.models import Image
from search import selectors
from search.query import parse
from tests.search.ranking import exact_ranking, vector_of

PAGE = 60  # more than the collection: every result on one page


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def text_vector(text: str) -> np.ndarray:
    return unit(embeddings.encode_text(text, model=settings.CLIP_TEXT_MODEL))


def api_ids(client, q: str, **params) -> tuple[list[int], dict]:
    response = client.get("/api/search", {"q": q, "limit": 100, **params})
    assert response.status_code == 200, response.content
    body = response.json()
    return [result["id"] for result in body["results"]], body


def test_filters_in_the_box_are_the_filters_of_the_form(client, collection):
    in_box, body = api_ids(client, "a red house folder:holidays/2024")
    as_param, _ = api_ids(client, "a red house", path_prefix="holidays/2024/")
    assert in_box == as_param and len(in_box) == 15 and "problems" not in body

    png, _ = api_ids(client, "a red house type:png")
    assert set(png) == set(as_param)
    taken, _ = api_ids(client, "a red house taken:2022")
    assert {Image.objects.get(pk=pk).path.split("/")[0] for pk in taken} == {"work"} and len(taken) == 10
    both, _ = api_ids(client, "a red house taken:2023-07..2023-07-05 type:jpeg folder:holidays")
    assert len(both) == 5

    # The page: the same filters from the box, the text alone as the description.
    response = client.get("/", {"q": "a red house folder:holidays/2024"})
    assert response.status_code == 200
    assert [image.pk for image in response.context["page"].results] == as_param[: settings.SEARCH_PAGE_SIZE]


def test_combined_terms_rank_by_the_weighted_sum_of_unit_vectors(client, collection):
    query = 2 * text_vector("sunset") + 0.5 * text_vector("beach") - text_vector("people")
    ids, _ = api_ids(client, "2:sunset + 0.5:beach - people")
    assert ids == exact_ranking(query)[: len(ids)] and len(ids) == len(collection)

    anchor = collection[3]
    with_image = unit(vector_of(anchor)) + text_vector("at night")
    ids, _ = api_ids(client, f"like:{anchor.pk} + at night")
    assert ids == exact_ranking(with_image)[: len(ids)]

    # like:ID alone is the search for similar images: the image itself left out.
    alone, _ = api_ids(client, f"like:{anchor.pk}")
    similar = client.get(f"/api/images/{anchor.pk}/similar", {"limit": 100}).json()["results"]
    assert alone == [result["id"] for result in similar] and anchor.pk not in alone


def test_problems_are_said_and_the_rest_searched(client, collection):
    ids, body = api_ids(client, "a red house type:bmpx like:999999999 taken:2020-02-30")
    plain, _ = api_ids(client, "a red house")
    assert ids == plain
    problems = body["problems"]
    assert len(problems) == 3
    assert "“type:bmpx” (at character 13)" in problems[0]
    assert "taken:2020-02-30" in problems[1]
    assert "like:999999999" in problems[2] and "no searchable image" in problems[2]

    response = client.get("/", {"q": "a red house type:bmpx"})
    assert response.status_code == 200
    assert "“type:bmpx” (at character 13)" in response.content.decode()
    assert [image.pk for image in response.context["page"].results] == plain[: settings.SEARCH_PAGE_SIZE]


@pytest.mark.parametrize(
    "q, says",
    [
        ("- people", "only excluded terms"),
        ("cats - cats", "cancel out"),
        ("type:png", "nothing to look for"),
    ],
)
def test_nothing_to_look_for_is_a_message(client, collection, q, says):
    response = client.get("/api/search", {"q": q})
    assert response.status_code == 400 and says in response.json()["error"]
    page = client.get("/", {"q": q})
    assert page.status_code == 200 and page.context["page"] is None
    assert says in page.content.decode()


def test_quoted_text_narrows_to_paths_holding_it(client, collection):
    target = collection[7]
    name = target.path.rsplit("/", 1)[1].split(".")[0]
    ids, _ = api_ids(client, f'"{name.upper()}"')
    assert ids == [target.pk]
    ids, _ = api_ids(client, f'a red house "{name}"')
    assert ids == [target.pk]


def test_plain_text_searches_as_before(collection):
    parsed = parse("a red bicycle by the sea")
    page, notes = selectors.image_search_by_query(parsed, limit=PAGE)
    assert page is not None
    before = selectors.image_search_by_text("a red bicycle by the sea", limit=PAGE)
    assert [image.pk for image in page.results] == [image.pk for image in before.results] and notes == []


def test_the_help_is_on_the_page_and_in_the_openapi(client, db):
    assert "like:123" in client.get("/").content.decode()
    schema = client.get("/api/openapi.json").json()
    q = next(p for p in schema["paths"]["/api/search"]["get"]["parameters"] if p["name"] == "q")
    assert "taken:" in q["description"] and "query    =" in q["description"]
