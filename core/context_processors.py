"""What every page needs to know about the site itself."""

from django.conf import settings


def site(request) -> dict:
    """``demo``: the site runs on the generated world with its trained encoders (``scripts/run --demo``)."""
    return {"demo": settings.DEMO}
