"""The site says "try again shortly" while the database is away, and recovers by itself when it is back;
with read replicas, a client that just wrote reads the primary."""

import contextlib
import logging

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

from config import replicas

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


class ReadYourWritesMiddleware:
    """With read replicas, a client that just wrote reads the primary for a few seconds.

    Replicas lag the primary a little, so the image someone has just uploaded may not be on them
    yet. A POST (PUT, PATCH, DELETE) that wrote to the primary (an upload in the admin, an edit)
    answers with a signed cookie; for REPLICA_READ_YOUR_WRITES_SECONDS that client's searches and
    image pages read the primary (config.replicas.primary_only). A search by image, a POST that
    writes nothing, sets none. The signature's own time stamp ends the window, so a kept or copied
    cookie pins nobody for longer. Does nothing without DATABASE_REPLICA_URLS.
    """

    COOKIE = "read_primary"
    SALT = "core.middleware.ReadYourWritesMiddleware"
    WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not replicas.aliases():
            return self.get_response(request)
        seconds = settings.REPLICA_READ_YOUR_WRITES_SECONDS
        wrote_lately = request.get_signed_cookie(self.COOKIE, default=None, salt=self.SALT, max_age=seconds)
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            with replicas.primary_only() if wrote_lately else contextlib.nullcontext():
                return self.get_response(request)
        wrote = []

        def watch(execute, sql, params, many, context):
            if not wrote and sql.lstrip()[:6].upper().startswith(self.WRITES):
                wrote.append(True)
            return execute(sql, params, many, context)

        pinned = replicas.primary_only() if wrote_lately else contextlib.nullcontext()
        with pinned, connections[replicas.PRIMARY].execute_wrapper(watch):
            response = self.get_response(request)
        if wrote and response.status_code < 500 and seconds > 0:
            response.set_signed_cookie(
                self.COOKIE,
                "1",
                salt=self.SALT,
                max_age=seconds,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response
