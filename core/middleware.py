"""The site says "try again shortly" while the database is away, and recovers by itself when it is back."""

import logging

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

MESSAGE = "The database is not reachable right now. Please try again in a moment."


class DatabaseUnavailableMiddleware:
    """Turn a lost database connection into a 503 with a message, and drop the broken connection.

    Django reconnects on the next request (CONN_HEALTH_CHECKS), so no restart is needed.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)) and not _is_connection_error(exception):
            return None
        logger.warning("database unavailable: %s", exception)
        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            response = JsonResponse({"error": MESSAGE}, status=503)
        else:
            response = HttpResponse(render_to_string("503.html", {"message": MESSAGE}), status=503)
        response["Retry-After"] = "10"
        return response


def _is_connection_error(exception: BaseException) -> bool:
    cause = exception.__cause__
    return (
        isinstance(exception, DatabaseError)
        and cause is not None
        and cause.__class__.__name__
        in (
            "OperationalError",
            "InterfaceError",
        )
    )
