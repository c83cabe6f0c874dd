"""The search page: text in any language, an example image, the "similar" walk; and an image's own page.

Plain GETs and a multipart POST that work without JavaScript; static/js/search.js only enhances
(drop and paste, "more" in place, a lightbox). Requests sent with ``X-Partial: results`` (or
``X-Partial: image``) get just the fragment that the script swaps in.

Links are written by the templates with ``{% querystring search_query ... %}``: ``search_query``
is the search as links carry it, and each link adds its step of the walk or its page.
"""

from __future__ import annotations

import base64
import functools
import logging
import time

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, QueryDict
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from encoders.embeddings import EncoderUnavailable
from gallery.imaging import UnreadableImage
from gallery.models import Image

from . import metrics, selectors, throttle, timing, uploads
from .access import search_allowed
from .forms import ImageSearchForm, SearchForm, vector_to_token

logger = logging.getLogger(__name__)

EMPTY_COLLECTION = (
    "The collection is empty. Staff can add images in the admin, or run python manage.py embed_images PATH."
)
EMPTY_QUERY = "Type a few words to search, in any language, or search with an image."


def requires_search_access(view):
    """Send people who may not search (search.access) to the login page."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not search_allowed(request):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped


def _unavailable_message(request, exc: EncoderUnavailable) -> str:
    logger.error("search encoder unavailable: %s", exc)
    message = "Search is unavailable right now: the encoder could not be loaded. Please try again later."
    if request.user.is_staff or settings.DEBUG:
        message += f" ({exc})"
    return message


def _errors_message(form) -> str:
    return " ".join(" ".join(errors) for errors in form.errors.values())


def _search_query(*, q: str, filter_params: dict[str, str]) -> QueryDict:
    """The search as every link from the page carries it: the query and the active filters.

    Built from the cleaned form, not taken from request.GET (what ``{% querystring %}`` would use
    by default): the form sends every field, filled or not, and the search by image is a POST.
    """
    query = QueryDict(mutable=True)
    if q:
        query["q"] = q
    query.update(filter_params)
    return query


def _ids(ids: list[int]) -> str | None:
    """A trail as a link writes it; None for none, so that ``{% querystring %}`` leaves it out."""
    return ",".join(str(pk) for pk in ids) or None


def _render(request, context: dict, *, status: int = 200):
    page = context["page"]
    partial = request.headers.get("X-Partial") == "results" and page is not None and page.results
    template = "search/partials/results_page.html" if partial else "search/index.html"
    return render(request, template, context, status=status)


def _show(request, context: dict, page: selectors.SearchPage, *, status: int = 200):
    """Render a page of results, saying why when it is empty."""
    context["page"] = page
    if not page.results:
        narrowed = context.get("narrowed", context["filters_active"])
        empty = "No images match these filters." if narrowed else "No more images."
        context["message"] = f"{context['message']} {empty}".strip()
    return _render(request, context, status=status)


@csrf_exempt  # checked by csrf_protect below, once the upload handler is in place
@requires_search_access
@timing.with_server_timing
@vary_on_headers("X-Partial")
def index(request):
    """The search page: GET a text query or the walk; POST an example image."""
    if request.method == "POST":
        return _image_search(request)
    return _text_or_similar_search(request)


def _base_context(form) -> dict:
    return {
        "form": form,
        "page": None,
        "message": "",
        "message_kind": "info",
        "filter_params": {},
        "filters_active": False,
        "mode": None,
        "search_query": QueryDict(),
        # The walk: this page's step (similar, trail) and the trail its results' links carry on.
        "similar": None,
        "trail": None,
        "walk_trail": None,
    }


def _text_or_similar_search(request):
    form = SearchForm(request.GET)
    context = _base_context(form)
    if not form.is_valid():
        context.update(message=_errors_message(form), message_kind="error")
        return _render(request, context, status=400)

    data = form.cleaned_data
    filters = form.filters()
    filter_params = form.filter_params()
    context.update(
        filter_params=filter_params,
        # The Filters panel opens for its own fields; filters typed in the box stay in the box.
        filters_active=bool(form.filters(box=False)),
        narrowed=bool(filters),
        q=data["q"],
        search_query=_search_query(q=data["q"], filter_params=filter_params),
    )
    if selectors.collection_is_empty():
        context["message"] = EMPTY_COLLECTION
        return _render(request, context)

    search = {
        "limit": settings.SEARCH_PAGE_SIZE,
        "offset": data["offset"] or 0,
        "after": data["after"],
        "filters": filters,
    }
    if data["similar"]:
        return _similar_search(request, context, anchor_pk=data["similar"], trail=data["trail"], **search)
    if data["q"]:
        return _text_search(request, context, parsed=data["query"], **search)
    if "q" in request.GET:
        context["message"] = EMPTY_QUERY
    else:
        context["collection_size"] = selectors.collection_size()
    return _render(request, context)


def _text_search(request, context: dict, *, parsed, **search):
    context["mode"] = "text"
    try:
        page, notes = selectors.image_search_by_query(parsed, **search)
    except EncoderUnavailable as exc:
        context.update(message=_unavailable_message(request, exc), message_kind="error", mode=None)
        return _render(request, context, status=503)
    # What the box could not understand is said, and what it could is searched.
    context["message"] = " ".join(notes)
    if page is None:
        context["mode"] = None
        return _render(request, context)
    if page.results and request.headers.get("X-Partial") != "results":
        context["facets"] = _facets(context["q"], parsed, page)
    return _show(request, context, page)


def _facets(q: str, parsed, page: selectors.SearchPage) -> list[dict]:
    """The labels most common among this page's results, each with the query that narrows to it."""
    found = selectors.labels_of_images([image.pk for image in page.results])
    return [
        {
            "key": facet.concept.key,
            "name": facet.concept.name,
            "count": facet.count,
            "q": f"{q} label:{facet.concept.key}",
        }
        for facet in selectors.label_facets(found, exclude=parsed.labels)
    ]


# The image page shows at most this many labels, most probable first (the stored ones go on to
# gallery.labels.MAX_LABELS, with probabilities down to a hundredth of a percent).
SHOWN_LABELS = 5


def _percent(probability: float) -> str:
    if probability >= 0.01:
        return f"{probability:.0%}"
    return f"{probability:.1%}" if probability >= 0.001 else "<0.1%"


def _shown_labels(pk: int) -> list[dict]:
    found = selectors.image_labels(pk=pk) or []
    return [
        {
            "key": concept.key,
            "name": concept.name,
            "probability": probability,
            "percent": _percent(probability),
        }
        for concept, probability in found[:SHOWN_LABELS]
    ]


def _similar_search(request, context: dict, *, anchor_pk: int, trail: list[int], **search):
    anchor = selectors.embedded_image_get(pk=anchor_pk)
    if anchor is None:
        context.update(message="That image is no longer in the collection.", message_kind="error")
        return _render(request, context, status=404)
    trail = [pk for pk in trail if pk != anchor.pk]
    context.update(
        mode="similar",
        anchor=anchor,
        anchor_name=(anchor.path or anchor.file.name).rsplit("/", 1)[-1],
        trail_images=_breadcrumbs(trail),
        similar=anchor.pk,
        trail=_ids(trail),
        walk_trail=_ids([*trail, anchor.pk]),
    )
    return _show(request, context, selectors.image_search_similar(anchor, **search))


def _breadcrumbs(trail: list[int]) -> list[tuple[Image, str | None]]:
    """(image, the trail before it) for each image visited before: each a link back to that step of the walk."""
    images = selectors.images_by_id(trail)
    return [(image, _ids([previous.pk for previous in images[:i]])) for i, image in enumerate(images)]


def _image_search(request):
    try:
        handler = uploads.install(request)
        return _image_search_checked(request, handler)
    except uploads.UploadTooLarge as exc:
        return _image_search_refused(request, str(exc), status=413)
    except throttle.Throttled as exc:
        response = _image_search_refused(request, str(exc), status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response


def _image_search_refused(request, message: str, *, status: int):
    context = _base_context(SearchForm())
    context.update(message=message, message_kind="error")
    return _render(request, context, status=status)


@csrf_protect
def _image_search_checked(request, handler):
    form = ImageSearchForm(request.POST, request.FILES)
    uploads.check(handler)
    context = _base_context(SearchForm(request.POST))
    if selectors.collection_is_empty():
        context["message"] = EMPTY_COLLECTION
        return _render(request, context)
    if not form.is_valid():
        context.update(message=_errors_message(form), message_kind="error")
        return _render(request, context, status=400)

    data = form.cleaned_data
    preview = generation = None
    started = time.perf_counter()
    try:
        if data["image"]:
            query_image = uploads.encode(request, data["image"])  # Throttled: see _image_search
            vector, generation = query_image.vector, query_image.generation
            preview = "data:image/jpeg;base64," + base64.b64encode(query_image.thumbnail).decode("ascii")
        else:
            vector = data["vector"]  # the next page of an image search
    except UnreadableImage as exc:
        context.update(message=f"That file cannot be searched with: {exc}.", message_kind="error")
        return _render(request, context, status=400)
    except EncoderUnavailable as exc:
        context.update(message=_unavailable_message(request, exc), message_kind="error")
        return _render(request, context, status=503)

    filters = form.filters()
    filter_params = form.filter_params()
    context.update(
        mode="image",
        filter_params=filter_params,
        filters_active=bool(filters),
        search_query=_search_query(q="", filter_params=filter_params),
        vector_token=vector_to_token(vector),
        preview=preview,
    )
    try:
        page = selectors.image_search_by_vector(
            vector,
            limit=settings.SEARCH_PAGE_SIZE,
            offset=data["offset"] or 0,
            after=data["after"],
            filters=filters,
            generation=generation,
        )
    except EncoderUnavailable as exc:  # the encoders were switched between encoding and searching
        context.update(message=_unavailable_message(request, exc), message_kind="error")
        return _render(request, context, status=503)
    metrics.observe("image", started)
    return _show(request, context, page)


@require_GET
@requires_search_access
@vary_on_headers("X-Partial")
def image_detail(request, pk: int):
    """One image with its metadata, a link to the original and the way on to similar images."""
    image = selectors.image_get(pk=pk)
    if image is None:
        raise Http404("No such image.")
    form = SearchForm(request.GET)
    form.is_valid()  # only to carry the walk on; anything invalid is dropped
    filter_params = form.filter_params() if not form.errors else {}
    parts = image.path.split("/")[:-1] if image.path else []
    context = {
        "image": image,
        "search_query": _search_query(q=form.cleaned_data.get("q", ""), filter_params=filter_params),
        "trail": _ids(form.cleaned_data.get("trail") or []),
        # (name, the folder it names): each a link to the images in that folder.
        "folders": [(name, "/".join(parts[: i + 1])) for i, name in enumerate(parts)],
        "file_name": (image.path or image.file.name).rsplit("/", 1)[-1],
        "embedded": image.state == Image.State.EMBEDDED,
        "labels": _shown_labels(image.pk) if image.state == Image.State.EMBEDDED else [],
    }
    template = "search/partials/image.html" if request.headers.get("X-Partial") == "image" else "search/image.html"
    return render(request, template, context)
