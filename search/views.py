from django.conf import settings
from django.shortcuts import render

from gallery.models import Image

from .embeddings import ModelUnavailable
from .forms import TextSearchForm
from .selectors import image_search_by_text


def index(request):
    """The search page: a text query answered from the HNSW index, shown as a grid."""
    form = TextSearchForm(request.GET or None)
    context = {"form": form, "results": None, "error": None}
    context["collection_size"] = Image.objects.embedded().count()
    if form.is_valid():
        try:
            context["results"] = image_search_by_text(form.cleaned_data["q"], limit=settings.SEARCH_PAGE_SIZE)
        except ModelUnavailable as exc:
            context["error"] = f"Search is unavailable: the text model could not be loaded. {exc}"
    status = 503 if context["error"] else 200
    return render(request, "search/index.html", context, status=status)
