"""Serving stored images: only image files, with an image content type, never rendered as a document."""

from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.views.static import serve

# What may be served from MEDIA_ROOT, by extension, with the content type it is served as.
SERVABLE = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".jfif": "image/jpeg",
    ".png": "image/png",
    ".apng": "image/apng",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".ico": "image/x-icon",
}


def media(request, path: str):
    """Like django.views.static.serve, for images only, with headers that keep browsers from sniffing."""
    content_type = SERVABLE.get(Path(path).suffix.lower())
    if content_type is None:
        raise Http404("Not an image.")
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Content-Type"] = content_type
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Content-Disposition"] = "inline"
    response["Cache-Control"] = "public, max-age=86400"
    return response


def server_error(request):
    """handler500: a lost database is a 503 with a message (it comes back by itself); the rest a plain 500."""
    import sys

    from django.views.defaults import server_error as default_server_error

    from .middleware import DatabaseUnavailableMiddleware

    exception = sys.exc_info()[1]
    if exception is not None:
        response = DatabaseUnavailableMiddleware(lambda r: None).process_exception(request, exception)
        if response is not None:
            return response
    return default_server_error(request)
