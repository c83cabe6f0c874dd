"""Who may search: the one rule that the page and the API both ask."""

from django.conf import settings


def search_allowed(request) -> bool:
    """Anyone may search unless SEARCH_REQUIRES_LOGIN is set; then a logged-in user is needed."""
    return not settings.SEARCH_REQUIRES_LOGIN or request.user.is_authenticated
