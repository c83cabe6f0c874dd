import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.images import write_photos


@pytest.mark.django_db
def test_search_page_says_when_the_collection_is_empty(client):
    response = client.get(reverse("search:index"))
    assert response.status_code == 200
    assert "The collection is empty" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_search_page_renders_results_for_a_text_query(client, tmp_path):
    write_photos(tmp_path / "lib", 5)
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0)
    response = client.get(reverse("search:index"), {"q": "ein roter Hund am Strand"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="result"') == 5
    assert "/media/thumbnails/" in html
    results = response.context["results"]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
