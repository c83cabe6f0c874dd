"""Search by image is limited per client and per process; text search and the walk are not."""

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from search import throttle
from search.throttle import Rate, parse_rate
from tests.factories import make_images, upload
from tests.markup import one

pytestmark = pytest.mark.django_db

# 1,000,010 s is 10 s before a minute's window ends (1,000,020 = 16,667 x 60).
START = 1_000_010.0


class Clock:
    """The throttle's clock, stepped by the test instead of slept through."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(START)
    monkeypatch.setattr(throttle, "clock", fake)
    return fake


@pytest.fixture
def images(db):
    return make_images(6, folder="lib")


@pytest.fixture
def limited(settings, clock, images):
    """Three image searches a minute per client."""
    settings.IMAGE_SEARCH_RATE = "3/minute"
    return settings


def api_image_search(client, **extra):
    return client.post("/api/search/image", {"image": upload(2)}, **extra)


def page_image_search(client, **extra):
    return client.post("/", {"image": upload(2)}, **extra)


def assert_throttled(response, seconds: int):
    assert response.status_code == 429, response.content
    assert response["Retry-After"] == str(seconds)
    unit = "second" if seconds == 1 else "seconds"
    assert response.json() == {"error": f"Too many image searches; try again in {seconds} {unit}."}


def test_api_refuses_the_search_over_the_rate_until_the_window_passes(client, limited, clock, images):
    for _ in range(3):
        response = api_image_search(client)
        assert response.status_code == 200, response.content
        assert response.json()["results"][0]["id"] == images[2].pk
    assert_throttled(api_image_search(client), 10)
    clock.now += 5
    assert_throttled(api_image_search(client), 5)
    # The next window starts afresh, with the full rate.
    clock.now += 5
    assert [api_image_search(client).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_another_address_has_its_own_count(client, limited):
    for _ in range(3):
        assert api_image_search(client).status_code == 200
    assert api_image_search(client).status_code == 429
    other = api_image_search(client, REMOTE_ADDR="10.0.0.2")
    assert other.status_code == 200, other.content
    # One IPv6 client holds a /64: another address in it is the same client.
    assert [api_image_search(client, REMOTE_ADDR=f"2001:db8:1:2::{n}").status_code for n in range(1, 5)] == [
        200,
        200,
        200,
        429,
    ]
    assert api_image_search(client, REMOTE_ADDR="2001:db8:1:3::1").status_code == 200


def test_text_search_and_the_walk_are_not_limited(client, limited, images):
    for _ in range(4):
        api_image_search(client)
    assert api_image_search(client).status_code == 429
    for n in range(5):
        assert client.get("/api/search", {"q": f"a cat {n}"}).status_code == 200
        assert client.get(f"/api/images/{images[0].pk}/similar").status_code == 200
        assert client.get("/", {"q": f"a dog {n}"}).status_code == 200
        assert client.get("/", {"similar": images[1].pk}).status_code == 200


def test_the_page_shows_the_message_with_429(client, limited, images):
    first = page_image_search(client)
    assert first.status_code == 200
    vector = first.context["vector_token"]
    for _ in range(2):
        assert page_image_search(client).status_code == 200
    response = page_image_search(client)
    assert response.status_code == 429
    assert response["Retry-After"] == "10"
    assert response.context["message_kind"] == "error"
    html = response.content.decode()
    message = one(html, "p.message.error[role=alert]")
    assert message.text == "Too many image searches; try again in 10 seconds."
    assert 'id="text-search"' in html  # the normal search page, ready for a text search
    # The next page of an image search sends its vector, not the image: nothing to encode, not limited.
    more = client.post("/", {"vector": vector, "offset": 3})
    assert more.status_code == 200 and more.context["mode"] == "image"
    # The page and the API count together: both run the same model on the same server.
    assert_throttled(api_image_search(client), 10)


def test_forwarded_for_is_ignored_unless_the_site_is_behind_a_proxy(client, limited):
    statuses = [api_image_search(client, HTTP_X_FORWARDED_FOR=f"10.1.0.{n}").status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]

    limited.TRUSTED_PROXY_COUNT = 1
    cache.clear()
    # The proxy appends the address it saw; what the client wrote before it changes nothing.
    spoofed = [api_image_search(client, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 192.0.2.7").status_code for n in range(4)]
    assert spoofed == [200, 200, 200, 429]
    assert api_image_search(client, HTTP_X_FORWARDED_FOR="192.0.2.8").status_code == 200


def test_a_logged_in_user_is_counted_as_one_client_wherever_it_comes_from(limited, django_user_model):
    alice, bob = Client(), Client()
    alice.force_login(django_user_model.objects.create_user("alice"))
    bob.force_login(django_user_model.objects.create_user("bob"))
    statuses = [api_image_search(alice, REMOTE_ADDR=f"10.2.0.{n}").status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Bob shares Alice's last address but not her count.
    assert api_image_search(bob, REMOTE_ADDR="10.2.0.3").status_code == 200


def test_no_rate_means_no_limit(client, settings, clock, images):
    settings.IMAGE_SEARCH_RATE = "0"
    assert {api_image_search(client).status_code for _ in range(6)} == {200}


def test_a_search_waits_for_a_free_encoding_slot_then_gives_up(client, settings, images):
    settings.IMAGE_SEARCH_CONCURRENCY = 2
    settings.IMAGE_SEARCH_QUEUE_TIMEOUT = 0.05
    # Two searches are encoding (held here); the next one finds no slot in time.
    with throttle.encoding_slot(), throttle.encoding_slot():
        assert_throttled(api_image_search(client), 1)
        response = page_image_search(client)
        assert response.status_code == 429 and response["Retry-After"] == "1"
        # The queue holds back image searches only.
        assert client.get("/api/search", {"q": "a cat"}).status_code == 200
    assert api_image_search(client).status_code == 200


def test_a_failed_search_gives_its_slot_back(client, settings, images, tmp_path):
    settings.IMAGE_SEARCH_CONCURRENCY = 1
    settings.IMAGE_SEARCH_QUEUE_TIMEOUT = 0.05
    garbage = upload(b"not a picture", "notes.jpg")
    assert client.post("/api/search/image", {"image": garbage}).status_code == 400
    assert client.post("/", {"image": upload(b"nope", "n.jpg")}).status_code == 400
    settings.CLIP_IMAGE_MODEL = str(tmp_path / "missing-model")
    assert api_image_search(client).status_code == 503
    assert page_image_search(client).status_code == 503
    with throttle.encoding_slot():  # the one slot is free again (or this raises Throttled)
        pass


def test_the_openapi_schema_documents_429_for_image_search_only(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "429" in paths["/api/search/image"]["post"]["responses"]
    assert "429" not in paths["/api/search"]["get"]["responses"]
    assert "429" not in paths["/api/images/{image_id}/similar"]["get"]["responses"]


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20/minute", Rate(20, 60)),
        ("20/m", Rate(20, 60)),
        ("100/hours", Rate(100, 3600)),
        ("5/10s", Rate(5, 10)),
        (" 3 / 2 min ", Rate(3, 120)),
        ("1000/day", Rate(1000, 86400)),
        ("0", None),
        ("", None),
        ("0/minute", None),
    ],
)
def test_rates_are_read_from_the_setting(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["20", "twenty/minute", "20/fortnight", "/m", "20/minute/hour", "-1/minute"])
def test_a_rate_that_is_not_one_is_a_configuration_error(text):
    with pytest.raises(ImproperlyConfigured, match="IMAGE_SEARCH_RATE"):
        parse_rate(text)
