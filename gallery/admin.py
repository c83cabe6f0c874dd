from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from encoders.embeddings import EncoderUnavailable

from . import background
from .forms import ImageUploadForm
from .imaging import UnreadableImage
from .labels import concept_names
from .models import Concept, Image
from .services import DuplicateImage, image_create_from_upload, images_reembed, images_store_pending_from_uploads
from .storage import StorageReadError, StorageWriteError


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    # The list
    list_display = ["preview", "path", "state", "problem", "format", "dimensions", "encoder", "created_at"]
    list_display_links = ["preview", "path"]
    list_filter = ["state", "encoder", "format"]
    search_fields = ["path", "sha256"]
    list_per_page = 50
    actions = ["reembed", "embed_in_background"]
    change_list_template = "admin/gallery/image/change_list.html"

    # The change form: everything is derived from the file, so read-only
    readonly_fields = [
        "large_preview",
        "file",
        "path",
        "sha256",
        "width",
        "height",
        "format",
        "byte_size",
        "taken_at",
        "state",
        "error",
        "encoder",
        "attempts",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields
    upload_template = "admin/gallery/image/upload.html"

    @admin.display(description="")
    def preview(self, obj):
        if not obj.thumbnail:
            return "—"
        return format_html('<img src="{}" alt="" style="height:64px;width:64px;object-fit:cover">', obj.thumbnail.url)

    @admin.display(description="Preview")
    def large_preview(self, obj):
        if not obj.thumbnail:
            return "—"
        return format_html('<img src="{}" alt="" style="max-width:384px">', obj.thumbnail.url)

    @admin.display(description="Why it failed")
    def problem(self, obj):
        return obj.error[:120] if obj.error else ""

    @admin.display(description="Size")
    def dimensions(self, obj):
        return f"{obj.width}×{obj.height}" if obj.width else "—"

    @admin.action(description="Re-embed the selected images with the current encoder", permissions=["change"])
    def reembed(self, request, queryset):
        try:
            embedded, failed = images_reembed(queryset)
        except (EncoderUnavailable, StorageReadError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(
            request,
            f"Re-embedded {embedded} image(s); {failed} failed.",
            messages.SUCCESS if not failed else messages.WARNING,
        )

    @admin.action(
        description="Embed the selected pending or failed images again, on the workers", permissions=["change"]
    )
    def embed_in_background(self, request, queryset):
        if not background.enabled():
            self.message_user(request, "No task queue is set up (CELERY_BROKER_URL).", messages.ERROR)
            return
        try:
            count = background.requeue(queryset)
        except background.EnqueueError as exc:
            self.message_user(request, f"The images are pending, but {exc}.", messages.ERROR)
            return
        self.message_user(request, f"Queued {count} image(s) for the workers.", messages.SUCCESS)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not background.enabled():
            actions.pop("embed_in_background", None)
        return actions

    def changelist_view(self, request, extra_context=None):
        """The list, headed by the embedding progress: counts, images/s, and the latest failures."""
        # The latest failures on the plain list only: a filtered or searched list shows just what it found.
        failures = 0 if request.GET else 5
        extra_context = {**(extra_context or {}), "embedding": background.progress(failures=failures)}
        return super().changelist_view(request, extra_context=extra_context)

    @staticmethod
    def _create(upload):
        """(upload, its embedded Image or why it was not added), embedding here."""
        try:
            return upload, image_create_from_upload(file=upload, path=upload.name)
        except (UnreadableImage, DuplicateImage, StorageWriteError) as exc:
            return upload, exc

    def add_view(self, request, form_url="", extra_context=None):
        """Upload many files at once; each is validated, stored, thumbnailed and embedded."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImageUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            self._save_uploads(request, form.cleaned_data["files"])
            return redirect("admin:gallery_image_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": "Upload images",
            "has_view_permission": self.has_view_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.upload_template, context)

    def _save_uploads(self, request, files):
        """Each file stored and embedded here; with a broker, stored here and embedded by the workers."""
        in_background = background.enabled()
        if in_background:
            try:
                outcomes = images_store_pending_from_uploads(files)
            except StorageWriteError as exc:
                self.message_user(request, f"Nothing was added: {exc}. Nothing was kept.", messages.ERROR)
                return
        else:
            outcomes = (self._create(upload) for upload in files)
        added: list[int] = []
        for upload, outcome in outcomes:
            if isinstance(outcome, UnreadableImage):
                self.message_user(request, f"“{upload.name}” was not added: {outcome}.", messages.ERROR)
            elif isinstance(outcome, DuplicateImage):
                self.message_user(request, f"“{upload.name}” was not added: it is {outcome}.", messages.WARNING)
            elif isinstance(outcome, StorageWriteError):
                self.message_user(
                    request, f"“{upload.name}” was not added: {outcome}. Nothing was kept.", messages.ERROR
                )
            else:
                added.append(outcome.pk)
                if outcome.state == Image.State.FAILED:
                    self.message_user(
                        request, f"“{upload.name}” was stored but not embedded: {outcome.error}", messages.WARNING
                    )
        if not added:
            return
        if not in_background:
            self.message_user(request, f"Added {len(added)} image(s).", messages.SUCCESS)
            return
        try:
            background.enqueue(added)
        except background.EnqueueError as exc:
            self.message_user(
                request,
                f"Added {len(added)} image(s), but {exc}: they stay pending until queued again "
                "(the “Embed … on the workers” action).",
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            f"Added {len(added)} image(s); the workers are embedding them (progress above the list).",
            messages.SUCCESS,
        )


class ConceptForm(forms.ModelForm):
    class Meta:
        model = Concept
        fields = ["key", "names", "source"]

    def clean_names(self):
        names = self.cleaned_data["names"]
        if not isinstance(names, dict) or not all(
            isinstance(language, str) and isinstance(words, list) and all(isinstance(w, str) for w in words)
            for language, words in names.items()
        ):
            raise forms.ValidationError('Give names by language, as {"en": ["dog", "puppy"], "de": ["Hund"]}.')
        if not concept_names(names):
            raise forms.ValidationError("Give at least one name.")
        return names


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    """The vocabulary of zero-shot labels: a change of names is embedded again by ``manage.py label_images``."""

    form = ConceptForm
    list_display = ["key", "name", "source", "embedded", "updated_at"]
    list_filter = ["source"]
    search_fields = ["key", "names"]

    @admin.display(boolean=True, description="Embedded")
    def embedded(self, concept):
        return bool(concept.vector_key)

    def save_model(self, request, concept, form, change):
        if "names" in form.changed_data:
            concept.vector, concept.vector_key = None, ""  # embedded again by label_images
        super().save_model(request, concept, form, change)
