from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from . import formats


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes many files (Django's documented pattern)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": formats.ACCEPT, "multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class ImageUploadForm(forms.Form):
    files = MultipleFileField(
        label="Images",
        help_text=f"Choose or drop one or many image files ({', '.join(formats.FILTER_LABELS)}, ...).",
    )

    def clean_files(self):
        files = self.cleaned_data["files"]
        limit = settings.UPLOAD_MAX_BYTES
        too_big = [f.name for f in files if f.size > limit]
        if too_big:
            raise forms.ValidationError(
                f"Larger than {filesizeformat(limit)}: {', '.join(too_big)}. Nothing was uploaded."
            )
        return files
