"""The search page: text in any language, an example image, the "similar" walk; and an image's own page.

Plain GETs and a multipart POST that work without JavaScript; static/js/search.js only enhances
(drop and paste, "more" in place, a lightbox). Requests sent with ``X-Partial: results`` (or
``X-Partial: image``) get just the fragment that the script swaps in.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from encoders import embeddings
from encoders.embeddings import EncoderUnavailable
from gallery.models import Image

from . import selectors, throttle, timing, uploads
from .forms import ImageSearchForm, SearchForm, vector_to_token

logger = logging.getLogger(__name__)

EMPTY_COLLECTION = (
    "The collection is empty. Staff can add images in the admin, or run python manage.py embed_images PATH."
)
EMPTY_QUERY = "Type a few words to search, in any language, or search with an image."


def search_access(view):
    """Search is public unless SEARCH_REQUIRES_LOGIN is set."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if getattr(settings, "SEARCH_REQUIRES_LOGIN", False) and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped


def _unavailable_message(request, exc: EncoderUnavailable) -> str:
    logger.error("search model unavailable: %s", exc)
    message = "Search is unavailable right now: the model could not be loaded. Please try again later."
    if request.user.is_staff or settings.DEBUG:
        message += f" ({exc})"
    return message


def _querystring(params: dict) -> str:
    query = QueryDict(mutable=True)
    for name, value in params.items():
        if value not in (None, "", []):
            query[name] = value
    return query.urlencode()


def _page_context(*, results: list[Image] | None, offset: int, limit: int) -> dict:
    """Results trimmed to the page (they hold one more, to know), and where the next page starts (None at the end)."""
    if results is None:
        return {"results": None, "offset": offset, "next_offset": None}
    more = len(results) > limit and offset + limit < selectors.SEARCH_MAX_DEPTH
    page = results[:limit]
    return {
        "results": page,
        "offset": offset,
        "first_rank": offset + 1,
        "last_rank": offset + len(page),
        "next_offset": offset + limit if more else None,
        "next_after": str(selectors.Cursor.after_page(page)) if more else "",
    }


def _render(request, context: dict, *, status: int = 200):
    partial = request.headers.get("X-Partial") == "results" and context.get("results")
    template = "search/partials/results_page.html" if partial else "search/index.html"
    return render(request, template, context, status=status)


@csrf_exempt  # checked by csrf_protect below, once the upload handler is in place
@search_access
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
        "results": None,
        "message": "",
        "message_kind": "info",
        "filter_params": {},
        "filters_active": False,
        "mode": None,
    }


def _text_or_similar_search(request):
    form = SearchForm(request.GET)
    context = _base_context(form)
    if not form.is_valid():
        context["message"] = " ".join(" ".join(errors) for errors in form.errors.values())
        context["message_kind"] = "error"
        return _render(request, context, status=400)

    data = form.cleaned_data
    filters = form.filters()
    filter_params = form.filter_params()
    context.update(filter_params=filter_params, filters_active=bool(filters), q=data["q"])
    offset = data["offset"] or 0
    limit = selectors.page_limit(limit=settings.SEARCH_PAGE_SIZE, offset=offset)
    status = 200

    if selectors.collection_is_empty():
        context["message"] = EMPTY_COLLECTION
        return _render(request, context)

    results = None
    if data["similar"]:
        anchor = selectors.embedded_image_get(pk=data["similar"])
        if anchor is None:
            context.update(message="That image is no longer in the collection.", message_kind="error")
            return _render(request, context, status=404)
        trail = [pk for pk in data["trail"] if pk != anchor.pk]
        context.update(
            mode="similar",
            anchor=anchor,
            anchor_name=(anchor.path or anchor.file.name).rsplit("/", 1)[-1],
            trail_images=_breadcrumbs(trail, q=data["q"], filter_params=filter_params),
            origin_query=_querystring({"q": data["q"], **filter_params}),
            # Links from these results carry the walk one step further.
            walk_query=_querystring({"q": data["q"], **filter_params, "trail": _ids([*trail, anchor.pk])}),
            more_query=_querystring({"q": data["q"], **filter_params, "similar": anchor.pk, "trail": _ids(trail)}),
        )
        results = selectors.image_search_similar(
            anchor, limit=limit + 1, offset=offset, after=data["after"], filters=filters
        )
    elif data["q"]:
        context.update(
            mode="text",
            walk_query=_querystring({"q": data["q"], **filter_params}),
            more_query=_querystring({"q": data["q"], **filter_params}),
        )
        try:
            results = selectors.image_search_by_text(
                data["q"], limit=limit + 1, offset=offset, after=data["after"], filters=filters
            )
        except EncoderUnavailable as exc:
            context.update(message=_unavailable_message(request, exc), message_kind="error", mode=None)
            status = 503
    elif "q" in request.GET:
        context["message"] = EMPTY_QUERY
    else:
        context["collection_size"] = selectors.collection_size()

    context.update(_page_context(results=results, offset=offset, limit=limit))
    if results == [] and filters:
        context["message"] = "No images match these filters."
    elif results == []:
        context["message"] = "No more images."
    return _render(request, context, status=status)


def _ids(ids: list[int]) -> str:
    return ",".join(str(pk) for pk in ids)


def _breadcrumbs(trail: list[int], *, q: str, filter_params: dict) -> list[tuple[Image, str]]:
    """(image, link) for each image visited before, each link going back to that step of the walk."""
    crumbs = []
    images = selectors.images_by_id(trail)
    for i, image in enumerate(images):
        before = [previous.pk for previous in images[:i]]
        crumbs.append((image, _querystring({"q": q, **filter_params, "similar": image.pk, "trail": _ids(before)})))
    return crumbs


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
    # Decoding (in the form) and encoding an upload are what image search costs, so they are
    # throttled (Throttled: see _image_search); the next page carries the vector and is free.
    guard = throttle.image_search(request) if request.FILES.get("image") else contextlib.nullcontext()
    with guard:
        if not form.is_valid():
            context["message"] = " ".join(" ".join(errors) for errors in form.errors.values())
            context["message_kind"] = "error"
            return _render(request, context, status=400)
        decoded = form.cleaned_data["image"]
        try:
            if decoded is not None:
                with timing.measure("encode"):
                    vector = embeddings.encode_images([decoded.image])[0]
            else:
                vector = form.cleaned_data["vector"]
        except EncoderUnavailable as exc:
            context.update(message=_unavailable_message(request, exc), message_kind="error")
            return _render(request, context, status=503)

    data = form.cleaned_data
    filters = form.filters()
    filter_params = form.filter_params()
    offset = data["offset"] or 0
    limit = selectors.page_limit(limit=settings.SEARCH_PAGE_SIZE, offset=offset)
    results = selectors.image_search_by_vector(
        vector, limit=limit + 1, offset=offset, after=data["after"], filters=filters
    )
    context.update(
        mode="image",
        filter_params=filter_params,
        filters_active=bool(filters),
        vector_token=vector_to_token(vector),
        walk_query=_querystring(filter_params),
        preview=("data:image/jpeg;base64," + base64.b64encode(decoded.thumbnail).decode("ascii") if decoded else None),
    )
    context.update(_page_context(results=results, offset=offset, limit=limit))
    if results == []:
        context["message"] = "No images match these filters." if filters else "No more images."
    return _render(request, context)


@require_GET
@search_access
@vary_on_headers("X-Partial")
def image_detail(request, pk: int):
    """One image with its metadata, a link to the original and the way on to similar images."""
    image = get_object_or_404(Image.objects.defer("embedding"), pk=pk)
    form = SearchForm(request.GET)
    form.is_valid()  # only to carry the walk on; anything invalid is dropped
    data = {name: value for name, value in form.cleaned_data.items() if name in ("q", "trail")}
    filter_params = form.filter_params() if not form.errors else {}
    trail = data.get("trail") or []
    similar_query = _querystring({"q": data.get("q", ""), **filter_params, "trail": _ids(trail), "similar": image.pk})
    folders = []
    parts = image.path.split("/")[:-1] if image.path else []
    for i, name in enumerate(parts):
        folders.append((name, _querystring({"folder": "/".join(parts[: i + 1])})))
    context = {
        "image": image,
        "similar_url": f"{reverse('search:index')}?{similar_query}",
        "folders": folders,
        "file_name": image.path.rsplit("/", 1)[-1] if image.path else image.file.name.rsplit("/", 1)[-1],
        "embedded": image.state == Image.State.EMBEDDED,
    }
    template = "search/partials/image.html" if request.headers.get("X-Partial") == "image" else "search/image.html"
    return render(request, template, context)
