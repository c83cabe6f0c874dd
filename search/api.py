"""The JSON API (django-ninja), mounted at /api/: the same searches as the page, for programs.

Every answer is ``{"results": [...], "next": url | null}`` ordered by score (cosine similarity,
1 - cosine distance), or ``{"error": "..."}`` with 400, 401, 404, 413, 429 or 503. ``limit`` above
100 is refused (400), not clamped: a client that asks for more should know it did not get it.
Search by image is rate-limited per client (429 with a Retry-After header, in seconds).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import time
from typing import Annotated

import pydantic
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from ninja import Field, File, Form, NinjaAPI, Query, Schema
from ninja.decorators import decorate_view
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.files import UploadedFile

from encoders import embeddings
from gallery import background
from gallery.imaging import UnreadableImage
from gallery.models import Image

from . import metrics, query, selectors, throttle, timing, uploads
from .access import search_allowed
from .forms import MAX_QUERY_LENGTH

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


api = NinjaAPI(
    title="Image search API",
    version="1",
    description=__doc__,
    urls_namespace="api",
    # A plain callable, not ninja's django_auth: that would ask the image POST for a CSRF token,
    # and searching changes and stores nothing.
    auth=search_allowed,
)


# Schemas


def _no_null_characters(value: str) -> str:
    # PostgreSQL text cannot hold NUL (a filter with one would fail in the database); the page's
    # forms refuse it too (Django's ProhibitNullCharactersValidator), with the same words.
    if "\x00" in value:
        raise ValueError("Null characters are not allowed.")
    return value


Text = Annotated[str, pydantic.AfterValidator(_no_null_characters)]


def _iso_date(value):
    # The schema says YYYY-MM-DD; pydantic alone would also take a number as a Unix time ("0": 1970-01-01).
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("Input should be a date as YYYY-MM-DD")
    return value


Day = Annotated[dt.date, pydantic.BeforeValidator(_iso_date)]


class Label(Schema):
    key: str = Field(description="The concept's key (see the admin's vocabulary).")
    name: str = Field(description="Its first English name, else its first name.")
    probability: float = Field(description="Softmax over the whole vocabulary of the encoder's logit scale * cosine.")


class Result(Schema):
    id: int
    score: float = Field(description="Cosine similarity to the query, 1 - cosine distance; higher is nearer.")
    url: str = Field(description="The original file.")
    thumbnail_url: str = Field(description="A small JPEG of the image; the original file where there is none.")
    path: str = Field(description="Where the file came from, relative to the folder it was imported from.")
    width: int | None
    height: int | None
    labels: list[Label] = Field(
        description="What the encoder sees: the image's zero-shot labels, most probable first (empty before "
        "`manage.py label_images`); all of them: GET /api/images/{id}/labels."
    )


class Facet(Schema):
    key: str = Field(description="The concept's key: `label:KEY` in `q` narrows the search to it.")
    name: str = Field(description="Its first English name, else its first name.")
    count: int = Field(description="How many of this page's results carry it (among their three most probable labels).")


class Page(Schema):
    results: list[Result]
    next: str | None = Field(description="The URL of the next page, or null at the end.")
    facets: list[Facet] = Field(
        description=f"The labels most common among this page's results, most common first (at most "
        f"{selectors.FACETS}); labels already in `q` are left out. Empty before `manage.py label_images`."
    )


class QueryPage(Page):
    problems: list[str] | None = Field(
        None,
        description="Only when part of `q` was not understood: what and where, one sentence each; the rest was searched.",
    )


class Error(Schema):
    error: str


class Paging(Schema):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT}; more is a 400.")
    offset: int = Field(0, ge=0, le=selectors.SEARCH_MAX_DEPTH, description="Results to skip.")
    after: Text = Field(
        "",
        max_length=64,
        description="Where the previous page ended; `next` carries it, so that no result comes twice.",
    )

    def cursor(self) -> selectors.Cursor | None:
        if not self.after:
            return None
        try:
            return selectors.Cursor.parse(self.after)
        except ValueError as exc:
            raise HttpError(400, "after: not a cursor from `next`.") from exc


class Filters(Schema):
    path_prefix: Text = Field("", max_length=1024, description="Only images whose path starts with this.")
    date_from: Day | None = Field(None, description="Taken on or after this day (EXIF date, else file time).")
    date_to: Day | None = Field(None, description="Taken on or before this day.")
    format: Text = Field("", max_length=16, description="JPEG, PNG, WEBP, HEIF, ...")

    def filters(self) -> selectors.ImageFilters:
        return selectors.ImageFilters(
            path_prefix=self.path_prefix, date_from=self.date_from, date_to=self.date_to, format=self.format
        )


class Search(Paging, Filters):
    def options(self) -> dict:
        """The selectors' keyword arguments: the page and the filters."""
        return {"limit": self.limit, "offset": self.offset, "after": self.cursor(), "filters": self.filters()}


class TextQuery(Search):
    q: Text = Field(
        ...,
        description=(
            f"What to look for, in any language (at most {MAX_QUERY_LENGTH} characters). {query.HELP} "
            "Filters in `q` take the place of the same parameters. The grammar:\n\n```\n" + query.GRAMMAR + "```"
        ),
    )


class ImageQuery(Search):
    pass


class EmbeddingFailure(Schema):
    id: int
    path: str
    error: str = Field(description="Why it could not be embedded.")


class EmbeddingProgress(Schema):
    pending: int = Field(description="Images stored and waiting for a worker.")
    embedded: int
    failed: int
    rate: float = Field(description="Images embedded per second over the last `rate_window_seconds`.")
    rate_window_seconds: int
    background: bool = Field(description="Whether Celery workers embed (CELERY_BROKER_URL is set).")
    queue: str | None = Field(description="The queue uploads are sent to (EMBED_QUEUE), or null.")
    queued_tasks: int | None = Field(description="Batches waiting in that queue; null when it cannot be asked.")
    failures: list[EmbeddingFailure] = Field(description="The latest failures, newest first.")


ERRORS = {400: Error, 401: Error, 404: Error, 413: Error, 503: Error}
# Only search by image is rate-limited (search/throttle.py).
IMAGE_ERRORS = {**ERRORS, 429: Error}


# Errors: always {"error": "..."}


def _error(request, message: str, status: int):
    return api.create_response(request, {"error": message}, status=status)


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    return _error(request, _describe(exc.errors), 400)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return _error(request, str(exc), exc.status_code)


@api.exception_handler(Http404)
def _not_found(request, exc: Http404):
    return _error(request, str(exc) or "Not found.", 404)


@api.exception_handler(AuthenticationError)
def _unauthorized(request, exc: AuthenticationError):
    return _error(request, "Log in to search.", 401)


@api.exception_handler(embeddings.EncoderUnavailable)
def _unavailable(request, exc: embeddings.EncoderUnavailable):
    logger.error("search encoder unavailable: %s", exc)
    return _error(request, f"Search is unavailable: the encoder set by {exc.setting} could not be loaded.", 503)


@api.exception_handler(UnreadableImage)
def _unreadable(request, exc: UnreadableImage):
    return _error(request, f"The image cannot be read: {exc}.", 400)


@api.exception_handler(uploads.UploadTooLarge)
def _too_large(request, exc: uploads.UploadTooLarge):
    return _error(request, str(exc), 413)


@api.exception_handler(throttle.Throttled)
def _throttled(request, exc: throttle.Throttled):
    response = _error(request, str(exc), 429)
    response["Retry-After"] = str(exc.retry_after)
    return response


# Helpers


def _describe(errors) -> str:
    """Pydantic's errors as one line: ``limit: Input should be less than or equal to 100``."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "form", "params"))
        message = error.get("msg", "invalid")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "Invalid request."


def _label(concept, probability: float) -> dict:
    return {"key": concept.key, "name": concept.name, "probability": probability}


def _result(image: Image, labels: dict[int, list]) -> dict:
    return {
        "id": image.pk,
        "score": image.score,
        "url": image.file.url,
        "thumbnail_url": image.preview_url,
        "path": image.path,
        "width": image.width,
        "height": image.height,
        "labels": [_label(concept, p) for concept, p in labels.get(image.pk, [])],
    }


def _page(request, params: Search, page: selectors.SearchPage, *, filtered: tuple[str, ...] = ()) -> dict:
    """The page as the API answers it; ``next`` is this request's URL with the next page's offset and cursor."""
    next_url = None
    if page.next is not None:
        query = QueryDict(mutable=True)
        for name, value in params.model_dump().items():
            if value not in (None, ""):
                query[name] = value.isoformat() if isinstance(value, dt.date) else str(value)
        query["offset"] = str(page.next_offset)
        query["after"] = str(page.next)
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    labels = selectors.labels_of_images([image.pk for image in page.results])
    facets = [
        {"key": f.concept.key, "name": f.concept.name, "count": f.count}
        for f in selectors.label_facets(labels, exclude=filtered)
    ]
    return {"results": [_result(image, labels) for image in page.results], "next": next_url, "facets": facets}


def in_memory_upload(run):
    """Read the operation's upload into memory only (never a temporary file); over UPLOAD_MAX_BYTES is a 413."""

    @functools.wraps(run)
    def wrapped(request, *args, **kwargs):
        try:
            handler = uploads.install(request)
            request.FILES  # noqa: B018 - parse now, with the handler above, before ninja does
            uploads.check(handler)
        except uploads.UploadTooLarge as exc:
            return JsonResponse({"error": str(exc)}, status=413)
        except (MultiPartParserError, SuspiciousOperation) as exc:
            # A body that is not multipart form data (or too many fields): Django's own answer
            # would be its HTML 400 page; the API answers in JSON, as the schema says.
            if isinstance(exc, SuspiciousOperation):
                logging.getLogger(f"django.security.{exc.__class__.__name__}").error("%s", exc)
            return JsonResponse({"error": f"The form data cannot be read: {exc}"}, status=400)
        return run(request, *args, **kwargs)

    return wrapped


# Endpoints (decorate_view wraps ninja's own handling, so these run before it parses the request)


@decorate_view(timing.with_server_timing)
@api.get(
    "/search",
    response={200: QueryPage, **ERRORS},
    summary="Search by text, in any language",
    exclude_unset=True,  # `problems` only when there are some
)
def search_by_text(request, params: Query[TextQuery]):
    q = params.q.strip()
    if not q:
        raise HttpError(400, "The query is empty.")
    if len(q) > MAX_QUERY_LENGTH:
        raise HttpError(400, f"The query is longer than {MAX_QUERY_LENGTH} characters.")
    parsed = query.parse(q)
    options = params.options()
    options["filters"] = selectors.filters_from_box(parsed, options["filters"])
    page, notes = selectors.image_search_by_query(parsed, **options)
    if page is None:
        raise HttpError(400, " ".join(notes))
    answer = _page(request, params, page, filtered=parsed.labels)
    if notes:
        answer["problems"] = notes
    return answer


@decorate_view(in_memory_upload, timing.with_server_timing)
@api.post(
    "/search/image",
    response={200: Page, **IMAGE_ERRORS},
    summary="Search by an example image",
    description=(
        "Multipart: the image in the field `image`, with `limit`, `offset` and the filters as form fields "
        "(or query parameters). The image is decoded in memory, searched with and forgotten: nothing is "
        "stored. `next` is the URL to POST the same image to for the next page. Rate-limited per client: "
        "over the limit, 429 with a `Retry-After` header (seconds)."
    ),
)
def search_by_image(request, image: File[UploadedFile], params: Form[ImageQuery]):
    # Paging and filters may also come in the query string: that is how `next` carries them.
    try:
        params = ImageQuery.model_validate({**request.GET.dict(), **params.model_dump(exclude_unset=True)})
    except pydantic.ValidationError as exc:
        raise HttpError(400, _describe(exc.errors())) from exc
    options = params.options()  # a broken cursor is a 400 before the image costs anything
    started = time.perf_counter()
    query = uploads.encode(request, image)
    page = selectors.image_search_by_vector(query.vector, generation=query.generation, **options)
    metrics.observe("image", started)
    return _page(request, params, page)


@decorate_view(timing.with_server_timing)
@api.get(
    "/images/{image_id}/similar", response={200: Page, **ERRORS}, summary="Images similar to one in the collection"
)
def similar_images(request, image_id: int, params: Query[ImageQuery]):
    """The images nearest to image ``image_id``, itself excluded; the filters apply too."""
    image = selectors.embedded_image_get(pk=image_id)
    if image is None:
        raise Http404(f"No image {image_id} in the collection.")
    return _page(request, params, selectors.image_search_similar(image, **params.options()))


class Labels(Schema):
    labels: list[Label] = Field(description="Most probable first; empty until `manage.py label_images` ran.")


@api.get("/images/{image_id}/labels", response={200: Labels, **ERRORS}, summary="What the encoder sees in an image")
def image_labels(request, image_id: int):
    """The zero-shot labels of image ``image_id`` (gallery/labels.py), computed from its stored vector."""
    found = selectors.image_labels(pk=image_id)
    if found is None:
        raise Http404(f"No image {image_id} in the collection.")
    return {"labels": [_label(concept, p) for concept, p in found]}


@api.get(
    "/embedding",
    auth=None,
    response={200: EmbeddingProgress, 401: Error, 403: Error},
    summary="Embedding progress (staff only)",
    description=(
        "Counts of pending, embedded and failed images, images/s, the queue, and the latest failures "
        "with their reasons. Staff only, whatever SEARCH_REQUIRES_LOGIN says: it names files that "
        "never appear in search (failed, pending) and how the site is run; log in through the admin."
    ),
)
def embedding_progress(request):
    if not request.user.is_authenticated:
        raise HttpError(401, "Log in to the admin (staff only).")
    if not (request.user.is_active and request.user.is_staff):
        raise HttpError(403, "Staff only.")
    return background.progress()
