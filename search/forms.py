from django import forms

MAX_QUERY_LENGTH = 500


class TextSearchForm(forms.Form):
    q = forms.CharField(
        label="Describe the image",
        max_length=MAX_QUERY_LENGTH,
        strip=True,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "a red bicycle by the sea, 雪山, Hund am Strand", "autofocus": True}
        ),
    )
