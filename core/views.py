"""Serving stored images: only image files, with an image content type, never rendered as a document."""

from django.conf import settings
from django.http import Http404
from django.views.static import serve

from gallery import formats


def media(request, path: str):
    """Like django.views.static.serve, for images only, with headers that keep browsers from sniffing."""
    content_type = formats.served_type(path)
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
