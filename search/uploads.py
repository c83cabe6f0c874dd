"""A search-by-image upload is read into memory only, and no further than UPLOAD_MAX_BYTES.

Django's default handlers would write a large upload to a temporary file; the query image is
not part of the collection and must leave nothing behind, so it never touches the disk.
Handlers must be set before anything reads request.POST (CSRF included), see ``install``.
The page and the API then both turn the upload into a query vector with ``encode``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from encoders import embeddings
from gallery import switch
from gallery.imaging import decode

from . import throttle, timing

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from django.core.files.uploadedfile import UploadedFile

# Room for the multipart framing and the small fields beside the image.
FORM_OVERHEAD_BYTES = 64 * 1024


class UploadTooLarge(Exception):
    """The upload is larger than UPLOAD_MAX_BYTES."""

    def __init__(self, max_bytes: int):
        from django.template.defaultfilters import filesizeformat

        self.max_bytes = max_bytes
        super().__init__(f"The image is larger than {filesizeformat(max_bytes)}, the largest this server accepts.")


class InMemoryImageUploadHandler(FileUploadHandler):
    """Keep uploaded files in memory; stop reading once one is larger than ``max_bytes``."""

    def __init__(self, request=None, *, max_bytes: int):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.too_large = False

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.too_large = True
            self.buffer = io.BytesIO()
            # Stops parsing; the fields read so far (the CSRF token comes first) are kept.
            raise StopUpload(connection_reset=False)
        self.buffer.write(raw_data)

    def file_complete(self, file_size):
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            file=self.buffer,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


def install(request) -> InMemoryImageUploadHandler:
    """Read this request's uploads with the in-memory handler; raise UploadTooLarge when it says so up front."""
    max_bytes = settings.UPLOAD_MAX_BYTES
    try:
        content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        content_length = 0
    if content_length > max_bytes + FORM_OVERHEAD_BYTES:
        # Refuse before reading a byte of the body.
        raise UploadTooLarge(max_bytes)
    handler = InMemoryImageUploadHandler(request, max_bytes=max_bytes)
    request.upload_handlers = [handler]
    return handler


def check(handler: InMemoryImageUploadHandler) -> None:
    """After the body was parsed: raise UploadTooLarge when the handler stopped reading."""
    if handler.too_large:
        raise UploadTooLarge(handler.max_bytes)


@dataclass(frozen=True)
class QueryImage:
    """An uploaded query image, encoded: its vector, and a small JPEG to show it back."""

    vector: np.ndarray
    thumbnail: bytes
    generation: int | None = None  # of the encoder pairs it was encoded with (gallery.switch)


def encode(request, upload: UploadedFile) -> QueryImage:
    """Decode and encode an uploaded query image under the image-search throttle.

    Raises throttle.Throttled, gallery.imaging.UnreadableImage or embeddings.EncoderUnavailable.
    """
    # Decoding and encoding are what search by image costs, so both are throttled; the database
    # query that follows is not, and the next page carries the vector, not the image.
    with throttle.image_search(request):
        decoded = decode(upload)
        with timing.measure("encode"):
            encoders = switch.current()
            vector = embeddings.encode_images([decoded.image], model=encoders.active.image)[0]
    return QueryImage(vector=vector, thumbnail=decoded.thumbnail, generation=encoders.generation)
