"""The JSON API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, and every answer is one the schema promises.

Requests go through the WSGI application in this process, on the test database with a small
embedded collection. Each operation gets schemathesis's coverage phase (boundary and invalid
values for every parameter, missing ones, wrong types) and FUZZ_MAX_EXAMPLES (default 50) generated
requests, positive and negative, derandomized so a run repeats exactly. Strings are sometimes
replaced with known troublemakers (NUL, the last day there is, SQL, template syntax); half the
walks start from an image that exists and half the image uploads are real pictures, so the code
behind the 404 and the 400 is fuzzed too. bench/fuzz.py runs this file with many more examples.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import image_bytes, make_images

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
# Unset: derandomized (the same requests every run). bench/fuzz.py sets a seed to explore.
SEED = os.environ.get("FUZZ_SEED", "")

# Not positive_data_acceptance: a schema-valid request may still be refused (a blank query, an
# image that is not one). Not negative_data_rejection: an empty form field means "not given" (as
# an HTML form sends it, `date_to=`), which that check counts as invalid data accepted.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

TROUBLEMAKERS = [
    "\x00",
    "a\x00b",
    "9999-12-31",
    "0001-01-01",
    "'; DROP TABLE gallery_image; --",
    "{{ x }}{% if %}{% endif %}",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "NaN_1",
    "-inf_1",
    "1e308_9223372036854775808",
]

config = schemathesis.Config.from_dict(
    {
        **({"seed": int(SEED)} if SEED else {}),
        "dictionaries": {"troublemakers": {"values": TROUBLEMAKERS}},
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": not SEED,
            "database": "none",  # no .hypothesis/ folder
            "dictionaries": {"string": {"dictionary": "troublemakers", "probability": 0.2}},
        },
    }
)
# Loaded once, at collection (as schemathesis's pytest plugin wants), from the running app itself.
with override_settings(ALLOWED_HOSTS=["localhost"]):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application(), config=config)

COLLECTION_SIZE = 12
# The collection's ids (filled by the fixture) and real pictures to upload.
existing_ids: list[int] = []
PICTURES = [image_bytes(seed) for seed in (1, 5)] + [image_bytes(7, "PNG")]
# For bench/fuzz.py's summary: requests sent per operation, and each distinct failure with the
# last request that caused it (hypothesis replays the smallest one last).
tried: Counter[str] = Counter()
failures: dict[tuple[str, str], str] = {}


@schema.hook
def before_generate_path_parameters(context, strategy):
    existing = st.integers(0, COLLECTION_SIZE - 1).map(lambda i: {"image_id": existing_ids[i]})
    return st.one_of(strategy, existing)


@schema.hook
def before_generate_body(context, strategy):
    def with_picture(body, picture):
        return {**body, "image": picture} if isinstance(body, dict) else body

    return st.one_of(strategy, st.builds(with_picture, strategy, st.sampled_from(PICTURES)))


@pytest.fixture
def api(db, settings):
    """The collection, and the WSGI app inside the test's transaction."""
    existing_ids[:] = [image.pk for image in make_images(COLLECTION_SIZE, folder="fuzz")]
    settings.ALLOWED_HOSTS = ["localhost"]  # the host schemathesis's WSGI client sends
    # As django.test.Client does: a request must not close the connection holding the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
# The fixture's collection is only read, so sharing it across examples is what we want.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_answers_as_its_schema_says(case, api):
    tried[case.operation.label] += 1
    try:
        case.call_and_validate(checks=CHECKS)
    except BaseException as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
        for failure in getattr(exc, "exceptions", [exc]):
            title = getattr(failure, "title", type(failure).__name__)
            failures[(case.operation.label, title)] = case.as_curl_command()
        raise


# Found by bench/fuzz.py: a body Django cannot parse as a form got Django's HTML 400 page, not the API's JSON.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--x\r\nnot a part", "multipart/form-data"),  # no boundary
        (b"--x\r\n\r\n", "multipart/form-data; boundary="),
        (b"a=1&b=2&c=3&d=4", "application/x-www-form-urlencoded"),  # more fields than allowed
        (b"image=" + b"x" * 5000, "application/x-www-form-urlencoded"),  # a field larger than allowed
    ],
    ids=["no-boundary", "empty-boundary", "too-many-fields", "too-big"],
)
def test_a_body_that_cannot_be_read_as_a_form_is_a_json_400(client, settings, body, content_type):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4000
    response = client.generic("POST", "/api/search/image", body, content_type=content_type)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"].startswith("The form data cannot be read: ")
