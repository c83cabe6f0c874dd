"""What a search page request may ask for, validated; the API validates the same things with its schemas."""

from __future__ import annotations

import base64
import binascii

import numpy as np
from django import forms
from django.conf import settings

from gallery import formats

from . import query
from .selectors import SEARCH_MAX_DEPTH, Cursor, ImageFilters, filters_from_box

MAX_QUERY_LENGTH = 500
# The walk's breadcrumb keeps the last images visited, so its URL stays short.
MAX_TRAIL = 12

FORMAT_CHOICES = [("", "Any format"), *formats.FILTER_CHOICES]


def vector_to_token(vector: np.ndarray) -> str:
    """A query vector as text for a hidden field, so "more results" needs no stored query image."""
    return base64.urlsafe_b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def vector_from_token(token: str) -> np.ndarray:
    """The vector of ``vector_to_token``; raises ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not a query vector") from exc
    if len(raw) != settings.EMBEDDING_DIMENSIONS * 4:
        raise ValueError("not a query vector")
    # The norm in float64: in float32 the squares of tiny components vanish and of huge ones overflow.
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("not a query vector")
    return (vector / norm).astype(np.float32)


class CursorField(forms.CharField):
    """Where the previous page ended (see selectors.Cursor); empty for the first page."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=64, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        try:
            return Cursor.parse(value)
        except ValueError as exc:
            raise forms.ValidationError("That page link is broken; start the search again.") from exc


class FilterForm(forms.Form):
    """Folder, dates taken and format: the filters every search on the page can take."""

    folder = forms.CharField(
        required=False,
        max_length=1024,
        widget=forms.TextInput(attrs={"placeholder": "e.g. 2024/holidays", "autocomplete": "off"}),
    )
    date_from = forms.DateField(required=False, label="Taken from", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))
    format = forms.ChoiceField(required=False, choices=FORMAT_CHOICES)

    FILTER_FIELDS = ("folder", "date_from", "date_to", "format")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self, *, box: bool = True) -> ImageFilters:
        """The filters of the fields, where the search box's own (folder:, type:, taken:) take their place.

        ``box=False``: those of the fields alone.
        """
        data = self.cleaned_data
        folder = data.get("folder", "").strip().strip("/")
        fields = ImageFilters(
            # A folder, not any prefix: "2024/trip" must not also match "2024/trip-2".
            path_prefix=f"{folder}/" if folder else "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            format=data.get("format", ""),
        )
        parsed = data.get("query")
        return filters_from_box(parsed, fields) if box and parsed else fields

    def filter_params(self) -> dict[str, str]:
        """The active filters as query parameters (for links that keep them)."""
        data = self.cleaned_data
        params = {}
        for name in self.FILTER_FIELDS:
            value = data.get(name)
            if value:
                params[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return params


class SearchForm(FilterForm):
    """A text query, or the walk (``similar`` with the ``trail`` of images visited), plus paging."""

    q = forms.CharField(
        label="Describe the image",
        required=False,
        max_length=MAX_QUERY_LENGTH,
        strip=True,
        help_text=query.HELP,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "a red bicycle by the sea, 雪山, Hund am Strand",
                "autocomplete": "off",
            }
        ),
    )
    similar = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    trail = forms.CharField(required=False, max_length=400, widget=forms.HiddenInput)
    offset = forms.IntegerField(required=False, min_value=0, max_value=SEARCH_MAX_DEPTH, widget=forms.HiddenInput)
    after = CursorField()

    def clean(self):
        cleaned = super().clean()
        # The search box's text, understood (search/query.py); what it could not understand is in its problems.
        cleaned["query"] = query.parse(cleaned.get("q") or "")
        return cleaned

    def clean_trail(self) -> list[int]:
        ids = []
        for part in self.cleaned_data["trail"].split(","):
            # isdecimal, not isdigit: "²" is a digit that int() refuses.
            if part.strip().isdecimal():
                ids.append(int(part))
        return ids[-MAX_TRAIL:]


class ImageSearchForm(FilterForm):
    """Search by an example image (a multipart upload), or the next page of one (its vector).

    The upload is decoded by the view (search.uploads.encode), under the image-search throttle.
    """

    image = forms.FileField(required=False, label="Search by image")
    vector = forms.CharField(required=False, widget=forms.HiddenInput)
    offset = forms.IntegerField(required=False, min_value=0, max_value=SEARCH_MAX_DEPTH, widget=forms.HiddenInput)
    after = CursorField()

    def clean_vector(self):
        token = self.cleaned_data.get("vector")
        if not token:
            return None
        try:
            return vector_from_token(token)
        except ValueError as exc:
            raise forms.ValidationError("The search expired; please choose the image again.") from exc

    def clean(self):
        cleaned = super().clean()
        if not self.errors and cleaned.get("image") is None and cleaned.get("vector") is None:
            raise forms.ValidationError("Choose an image, drop one on the page, or paste one.")
        return cleaned
