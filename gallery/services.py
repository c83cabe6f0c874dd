"""Writes to the collection: uploads and folder ingestion (decode -> embed -> one bulk upsert per batch)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from encoders import embeddings

from . import labels, switch
from .imaging import DecodedImage, UnreadableImage, decode, probe
from .metrics import IMAGES_EMBEDDED
from .models import Image
from .storage import STORAGE_ERRORS, StorageReadError, delete_quietly, image_name, save_once, thumbnail_name

HASH_CHUNK = 1 << 20
# What an upsert of a known sha256 rewrites: everything but the identity and the creation time.
UPSERT_FIELDS = [
    "file",
    "thumbnail",
    "path",
    "width",
    "height",
    "format",
    "byte_size",
    "taken_at",
    "embedding",
    "encoder",
    "embedding_next",
    "encoder_next",
    "state",
    "error",
    "updated_at",
]


class DuplicateImage(Exception):
    """The content is already in the collection."""

    def __init__(self, image: Image):
        self.image = image
        super().__init__(f"already in the collection as {image}")


@dataclass
class ReadyImage:
    """A decoded file on its way into the collection: its files go to storage, then its row with its vector."""

    sha256: str
    path: str
    byte_size: int
    decoded: DecodedImage
    file_name: str = ""  # set once the file is in storage
    thumbnail_name: str = ""
    file_time: dt.datetime | None = None  # the file's modification time, when there is no EXIF date

    @property
    def taken_at(self) -> dt.datetime | None:
        if self.decoded.taken_at is not None:
            return timezone.make_aware(self.decoded.taken_at, timezone.get_default_timezone())
        return self.file_time

    def row(self, *, vectors: switch.Vectors | None = None, encoder_id: str = "", vector=None) -> dict:
        """The fields of its embedded Image row, for ``images_upsert``.

        ``vectors`` ({image model: (encoder id, vector)}, see gallery.switch) go to the columns
        ``images_upsert`` finds them belong to; ``encoder_id`` and ``vector`` alone mean a vector
        made by CLIP_IMAGE_MODEL.
        """
        if vectors is None:
            vectors = {settings.CLIP_IMAGE_MODEL: (encoder_id, vector)} if vector is not None else {}
        return {
            "sha256": self.sha256,
            "file": self.file_name,
            "thumbnail": self.thumbnail_name,
            "path": self.path,
            "width": self.decoded.width,
            "height": self.decoded.height,
            "format": self.decoded.format,
            "byte_size": self.byte_size,
            "taken_at": self.taken_at,
            "vectors": vectors,
            "state": Image.State.EMBEDDED,
            "error": "",
        }


def sha256_of(fileobj: BinaryIO) -> str:
    digest = hashlib.sha256()
    fileobj.seek(0)
    for chunk in iter(lambda: fileobj.read(HASH_CHUNK), b""):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest()


def images_upsert(rows: list[dict]) -> None:
    """One INSERT ... ON CONFLICT (sha256) DO UPDATE for a whole batch, in one transaction.

    Each row's ``vectors`` go to ``embedding`` and ``embedding_next`` as the encoder pairs say under
    the table's lock (gallery.switch.columns); raises switch.PairChanged when they no longer fit
    (encode again: ``switch.retrying``). A row without ``vectors`` keeps the columns it names.
    """
    if not rows:
        return
    # Rows in sha256 order: concurrent runs then lock conflicting rows in the same order (no deadlock).
    rows = sorted(rows, key=lambda row: row["sha256"])
    with transaction.atomic():
        encoders = switch.locked()
        images = []
        for row in rows:
            fields = dict(row)
            vectors = fields.pop("vectors", None)
            if vectors is not None:
                embedded = fields.get("state") == Image.State.EMBEDDED
                fields.update(switch.columns(vectors, encoders) if embedded else _NO_VECTORS)
            images.append(Image(**fields))
        Image.objects.bulk_create(
            images,
            update_conflicts=True,
            unique_fields=["sha256"],
            update_fields=UPSERT_FIELDS,
        )
    IMAGES_EMBEDDED.inc(sum(1 for row in rows if row.get("state") == Image.State.EMBEDDED))
    if embedded_sha256s := [row["sha256"] for row in rows if row.get("state") == Image.State.EMBEDDED]:
        transaction.on_commit(lambda: labels.label_new(sha256s=embedded_sha256s))


_NO_VECTORS = {"embedding": None, "encoder": "", "embedding_next": None, "encoder_next": ""}


def image_create_from_upload(*, file, path: str = "") -> Image:
    """Validate, store, thumbnail and embed one uploaded file.

    Raises UnreadableImage (with a reason a person understands) or DuplicateImage. When the encoder
    cannot be loaded the image is kept with state "failed" and the reason, to be re-embedded later.
    """
    sha = sha256_of(file)
    existing = Image.objects.filter(sha256=sha).first()
    if existing is not None:
        raise DuplicateImage(existing)
    decoded = decode(file)
    file.seek(0)
    ready = ReadyImage(
        sha256=sha,
        path=path or getattr(file, "name", ""),
        byte_size=file.size,
        decoded=decoded,
        file_time=timezone.now(),
    )

    def write(encoders: switch.Encoders) -> None:
        try:
            vectors, error = switch.one(switch.encode_images([decoded.image], encoders), 0), ""
        except embeddings.EncoderUnavailable as exc:
            vectors, error = {}, str(exc)
        row = ready.row(vectors=vectors)
        if error:
            row.update(state=Image.State.FAILED, error=error)
        images_upsert([row])

    created: list[str] = []
    try:
        # Files first, then the row; if anything fails, the files written here go again:
        # no row without its file, no file without its row.
        ready.file_name = save_once(image_name(sha, decoded.format), file, created)
        ready.thumbnail_name = save_once(thumbnail_name(sha), decoded.thumbnail, created)
        switch.retrying(write)
    except BaseException:
        delete_quietly(created)
        raise
    return Image.objects.get(sha256=sha)


def images_store_pending_from_uploads(files) -> list[tuple[object, Image | Exception]]:
    """Check and store uploaded files for the workers to embed: "pending" rows, no vectors yet.

    What the admin upload does when a broker is set (gallery/background.py): only each file's header
    is read (format and size; a file that is not an image is refused here), and the rows are written
    by one query, so a request with hundreds of photos answers at once (bench/README.md, "Background
    embedding"). The worker decodes, makes the thumbnail and embeds. Returns, for each file in order,
    its pending Image or the UnreadableImage / DuplicateImage that kept it out, as
    image_create_from_upload would raise; a storage or database error stops it all (StorageWriteError,
    DatabaseError), with the files it wrote taken back.
    """
    hashes = [sha256_of(file) for file in files]
    known = {image.sha256: image for image in Image.objects.filter(sha256__in=hashes)}
    outcomes: list[tuple[object, Image | Exception]] = []
    rows: dict[str, Image] = {}
    created: list[str] = []
    try:
        for file, sha in zip(files, hashes, strict=True):
            path = getattr(file, "name", "")
            twin = known.get(sha) or rows.get(sha)
            if twin is not None:
                outcomes.append((file, DuplicateImage(twin)))
                continue
            try:
                fmt, width, height = probe(file)
            except UnreadableImage as exc:
                outcomes.append((file, exc))
                continue
            rows[sha] = Image(
                sha256=sha,
                file=save_once(image_name(sha, fmt), file, created),
                path=path,
                width=width,
                height=height,
                format=fmt,
                byte_size=file.size,
                taken_at=timezone.now(),  # until the worker finds an EXIF date
                state=Image.State.PENDING,
            )
            outcomes.append((file, rows[sha]))
        with transaction.atomic():
            # Never over an existing row: the same content uploaded at this moment by another request.
            Image.objects.bulk_create(sorted(rows.values(), key=lambda row: row.sha256), ignore_conflicts=True)
    except BaseException:
        delete_quietly(created)
        raise
    stored = {image.sha256: image for image in Image.objects.filter(sha256__in=list(rows))}
    result = []
    for file, outcome in outcomes:
        if isinstance(outcome, Image) and outcome.pk is None:
            saved = stored[outcome.sha256]
            # Another request's row for the same content (and the same stored file: its name comes
            # from the content, so nothing is deleted) is a duplicate, as it would be a moment later.
            outcome = (
                saved if saved.path == outcome.path and saved.state == Image.State.PENDING else DuplicateImage(saved)
            )
        result.append((file, outcome))
    return result


def images_reembed(images) -> tuple[int, int]:
    """Embed the given images again with the active encoder (and the next one during a switch); returns (embedded, failed).

    A file that is gone or unreadable marks its image failed, with the reason; a storage that does
    not answer (an object store down) stops the run with StorageReadError, marking nothing.
    """
    embedded = failed = 0
    for image in images:
        try:
            with image.file.open("rb") as fh:
                decoded = decode(fh)
        except (UnreadableImage, OSError) as exc:
            Image.objects.filter(pk=image.pk).update(state=Image.State.FAILED, error=str(exc))
            failed += 1
            continue
        except STORAGE_ERRORS as exc:
            raise StorageReadError(
                f"could not read {image.file.name} from storage: {exc}; {embedded} image(s) were re-embedded before it"
            ) from exc

        def write(encoders: switch.Encoders, image=image, decoded=decoded) -> None:
            vectors = switch.one(switch.encode_images([decoded.image], encoders), 0)
            with transaction.atomic():
                columns = switch.columns(vectors, switch.locked())
                Image.objects.filter(pk=image.pk).update(**columns, state=Image.State.EMBEDDED, error="")

        switch.retrying(write)
        embedded += 1
        IMAGES_EMBEDDED.inc()
        transaction.on_commit(lambda pk=image.pk: labels.label_new(ids=[pk]))
    return embedded, failed
