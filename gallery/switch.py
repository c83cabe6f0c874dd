"""Switching encoders without downtime: the new pair's vectors fill a second column, then the columns swap.

The vectors search uses are in ``Image.embedding``, made by the *active* image encoder; queries are
encoded by the text encoder of the same pair (never another: the two share one vector space only
as a pair). A switch goes:

1. ``switch_encoder fill`` records the *next* pair (NEXT_CLIP_IMAGE_MODEL / NEXT_CLIP_TEXT_MODEL)
   in ``EncoderPairs`` and fills ``embedding_next`` from the stored files, in batches, resumable.
   From then on every write (upload, folder ingestion, re-embed) stores both vectors, so the pass
   over the rows already there is the only one needed. Search goes on with ``embedding``.
2. ``switch_encoder build-index`` builds the HNSW index on ``embedding_next`` CONCURRENTLY.
3. ``switch_encoder switch`` (complete and indexed, else it refuses) renames, in one short
   transaction, embedding <-> embedding_next, encoder <-> encoder_next and their HNSW indexes
   (catalog-only DDL), and swaps the pairs in ``EncoderPairs``. The old vectors stay beside the new
   ones, kept up to date, so ``switch_encoder rollback`` is the same swap back.
4. ``switch_encoder drop`` forgets the other pair and clears its vectors and its index.

Every process learns the pairs from the ``EncoderPairs`` row (``current``: read at most every
REFRESH_SECONDS). That cache is never trusted for correctness: a search checks, after its query
and in its transaction, that ``generation`` is still the one its query vector was made for (the
query holds the table's ACCESS SHARE lock, which the swap's ACCESS EXCLUSIVE lock waits for, so
the check sees the pairs its query ran with) and encodes again otherwise; a write takes the
table's ROW EXCLUSIVE lock and reads the row before deciding which vector goes to which column.
Without the row (a site that never switched) the settings CLIP_IMAGE_MODEL / CLIP_TEXT_MODEL name
the active pair, exactly as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from encoders import embeddings

from .fields import EmbeddingHnswIndex, vector_type_in_database
from .models import EncoderPairs, Image

# How long a process goes on with the pairs it read (a search or a write that finds them changed
# reads them again at once, so this only bounds how late an idle process notices).
REFRESH_SECONDS = 5.0
ROW_ID = 1
INDEX = "gallery_image_embedding_hnsw"
NEXT_INDEX = "gallery_image_embedding_next_hnsw"
# Seconds the swap waits for the table's lock before giving up (searches and writes queue behind it meanwhile).
SWAP_LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Pair:
    """An image encoder and the text encoder that shares its vector space (model names or folders)."""

    image: str
    text: str

    def __str__(self) -> str:
        return f"{self.image} + {self.text}"


@dataclass(frozen=True)
class Encoders:
    """The active pair (its vectors in ``embedding``) and the next one (``embedding_next``), if any."""

    active: Pair
    next: Pair | None = None
    generation: int = 0
    recorded: bool = False  # False: no EncoderPairs row, the settings name the active pair


class PairChanged(Exception):
    """The encoder pairs changed between encoding and writing or searching: encode again."""


class SwitchRefused(Exception):
    """A switch_encoder step cannot run now; the message says why and what to do."""


@dataclass
class _Cache:
    value: Encoders | None = None
    read_at: float = 0.0
    key: tuple = ()
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache = _Cache()


def _settings_key() -> tuple:
    return (settings.CLIP_IMAGE_MODEL, settings.CLIP_TEXT_MODEL)


def _from_row(row: tuple | None) -> Encoders:
    if row is None:
        return Encoders(active=Pair(settings.CLIP_IMAGE_MODEL, settings.CLIP_TEXT_MODEL))
    image, text, next_image, next_text, generation = row
    following = Pair(next_image, next_text) if next_image else None
    return Encoders(active=Pair(image, text), next=following, generation=generation, recorded=True)


def read(using: str = DEFAULT_DB_ALIAS) -> Encoders:
    """The pairs as the database says now (one indexed single-row read), remembered for ``current``."""
    table = EncoderPairs._meta.db_table
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT image_model, text_model, next_image_model, next_text_model, generation FROM {table} WHERE id = %s",
            [ROW_ID],
        )
        encoders = _from_row(cursor.fetchone())
    with _cache.lock:
        _cache.value, _cache.read_at, _cache.key = encoders, time.monotonic(), _settings_key()
    return encoders


def current(*, fresh: bool = False, using: str = DEFAULT_DB_ALIAS) -> Encoders:
    """The pairs, read from the database at most every REFRESH_SECONDS (``fresh``: now)."""
    value = _cache.value
    if fresh or value is None or _cache.key != _settings_key() or time.monotonic() - _cache.read_at > REFRESH_SECONDS:
        return read(using)
    return value


def clear_cache() -> None:
    with _cache.lock:
        _cache.value = None


def check(generation: int, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Raise PairChanged unless the pairs are still at ``generation``.

    Call it inside the transaction that has just read or written ``gallery_image``: its lock on
    the table keeps a swap from committing in between, so what it reads is what the query saw.
    """
    if read(using).generation != generation:
        raise PairChanged("the encoders were switched meanwhile")


def on_active_pair(run: Callable[[Encoders], object], *, using: str = DEFAULT_DB_ALIAS):
    """``run(encoders)``, again with the pairs read afresh when it raises PairChanged."""
    for attempt in range(3):
        try:
            return run(current(fresh=attempt > 0, using=using))
        except PairChanged:
            continue
    # Three switches within one search: no encoder pair can be trusted for it.
    raise embeddings.EncoderUnavailable(
        embeddings.TEXT_SETTING, "The search encoders are being switched right now; try again in a moment."
    )


def locked(*, using: str = DEFAULT_DB_ALIAS) -> Encoders:
    """Inside a transaction: take gallery_image's ROW EXCLUSIVE lock (as a write would), then read the pairs.

    A swap cannot commit until this transaction ends, so vectors assigned to columns by these
    pairs land in the right columns.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(f"LOCK TABLE {Image._meta.db_table} IN ROW EXCLUSIVE MODE")
    return read(using)


# Vectors: {image model name: (encoder id, vectors)}; the name says which column they belong to.
Vectors = dict[str, tuple[str, object]]


def encode_images(images: Sequence, encoders: Encoders, *, batch_size: int | None = None) -> Vectors:
    """The images encoded by the active image encoder, and by the next one while a switch is under way."""
    models = [encoders.active.image] + ([encoders.next.image] if encoders.next else [])
    return {
        model: (
            embeddings.image_encoder_id(model),
            embeddings.encode_images(images, batch_size=batch_size, model=model),
        )
        for model in models
    }


def one(vectors: Vectors, index: int) -> Vectors:
    """The vectors of the ``index``-th image of a batch."""
    return {model: (encoder_id, array[index]) for model, (encoder_id, array) in vectors.items()}


def columns(vectors: Vectors, encoders: Encoders) -> dict:
    """The four vector columns of a row from its ``vectors``, following ``encoders`` read under the lock.

    Raises PairChanged when the active image encoder's vector is missing (the pairs changed since
    encoding), or while a switch is under way and the next one's is missing: every row written
    during a switch gets both, so the fill's one pass over the older rows is enough.
    """
    if encoders.active.image not in vectors or (encoders.next and encoders.next.image not in vectors):
        raise PairChanged("the encoders were switched meanwhile")
    encoder, embedding = vectors[encoders.active.image]
    encoder_next, embedding_next = vectors[encoders.next.image] if encoders.next else ("", None)
    return {
        "embedding": embedding,
        "encoder": encoder,
        "embedding_next": embedding_next,
        "encoder_next": encoder_next,
    }


def retrying(write: Callable[[Encoders], object], *, using: str = DEFAULT_DB_ALIAS):
    """``write(encoders)``, again with fresh pairs if they changed under it (encoding again, rarely)."""
    for attempt in range(3):
        try:
            return write(current(fresh=attempt > 0, using=using))
        except PairChanged:
            continue
    raise PairChanged("the encoders were switched three times during one write; run it again")


# The switch itself, step by step (manage.py switch_encoder).


def _next_from_settings() -> Pair:
    image, text = settings.NEXT_CLIP_IMAGE_MODEL, settings.NEXT_CLIP_TEXT_MODEL
    if not image or not text:
        raise SwitchRefused(
            "Set NEXT_CLIP_IMAGE_MODEL and NEXT_CLIP_TEXT_MODEL to the encoder pair to switch to (hub names or folders)."
        )
    return Pair(image, text)


def start(using: str = DEFAULT_DB_ALIAS) -> Encoders:
    """Record the next pair (from the NEXT_CLIP_* settings), or find it recorded already; return the pairs.

    Recorded under the table's SHARE lock: writes in flight finish first, and every write after
    reads the next pair, so none of them leaves a row without its next vector.
    """
    wanted = _next_from_settings()
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Image._meta.db_table} IN SHARE MODE")
        encoders = read(using)
        if encoders.next == wanted:
            return encoders
        if encoders.active == wanted:
            raise SwitchRefused(f"{wanted} is the active pair already; nothing to fill.")
        if encoders.next is not None:
            raise SwitchRefused(
                f"A switch to {encoders.next} is under way (or was rolled back); finish it, or "
                f"`manage.py switch_encoder drop` to forget it, before filling for {wanted}."
            )
        if wanted.image == encoders.active.image:
            raise SwitchRefused(
                f"NEXT_CLIP_IMAGE_MODEL names the active image encoder {wanted.image!r}. Put the new encoder "
                f"in a folder of its own (processes load encoders by name, both must be there at once)."
            )
        # Both must load here (EncoderUnavailable says why not) before any process is told to use them.
        embeddings.get_image_encoder(wanted.image)
        embeddings.get_text_encoder(wanted.text)
        EncoderPairs.objects.using(using).update_or_create(
            pk=ROW_ID,
            defaults={
                "image_model": encoders.active.image,
                "text_model": encoders.active.text,
                "next_image_model": wanted.image,
                "next_text_model": wanted.text,
                "generation": encoders.generation + 1,
            },
        )
        return read(using)


def _unfilled(encoders: Encoders, using: str = DEFAULT_DB_ALIAS):
    """Embedded images without the next pair's vector."""
    next_id = embeddings.image_encoder_id(encoders.next.image)
    return (
        Image.objects.using(using)
        .filter(state=Image.State.EMBEDDED, embedding__isnull=False)
        .exclude(embedding_next__isnull=False, encoder_next=next_id)
    )


@dataclass
class Progress:
    filled: int
    total: int
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (image id, reason)

    @property
    def missing(self) -> int:
        return self.total - self.filled


def progress(encoders: Encoders, using: str = DEFAULT_DB_ALIAS) -> Progress:
    total = Image.objects.using(using).embedded().count()
    return Progress(filled=total - _unfilled(encoders, using).count(), total=total)


def fill(
    *,
    batch_size: int = 32,
    mark_failed: bool = False,
    on_batch: Callable[[Progress], None] | None = None,
    limit: int | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> Progress:
    """Fill ``embedding_next`` for every embedded image that lacks it, from its stored file.

    Resumable: only rows still without the next vector are read, in id order, a batch at a time,
    each batch written in its own short transaction. An unreadable file is reported (and, with
    ``mark_failed``, marked failed with the reason) and the rest goes on. ``limit`` stops after
    that many images (for tests of resuming, and for spreading the work over several runs).
    """
    from .imaging import UnreadableImage, decode

    encoders = start(using)
    report = progress(encoders, using)
    last_id, done = 0, 0
    while limit is None or done < limit:
        take = batch_size if limit is None else min(batch_size, limit - done)
        batch = list(
            _unfilled(encoders, using).filter(pk__gt=last_id).order_by("pk").only("pk", "sha256", "file")[:take]
        )
        if not batch:
            break
        last_id = batch[-1].pk
        readable, pictures = [], []
        for image in batch:
            try:
                with image.file.open("rb") as handle:
                    pictures.append(decode(handle).image)
                readable.append(image)
            except (UnreadableImage, OSError, ValueError) as exc:
                reason = f"switch_encoder fill: cannot read {image.file.name}: {exc}"
                report.unreadable.append((image.pk, reason))
                if mark_failed:
                    Image.objects.using(using).filter(pk=image.pk).update(state=Image.State.FAILED, error=reason)
        done += len(batch)
        if not readable:
            continue
        next_id = embeddings.image_encoder_id(encoders.next.image)
        vectors = embeddings.encode_images(pictures, batch_size=batch_size, model=encoders.next.image)
        with transaction.atomic(using=using):
            now = locked(using=using)
            if now.next != encoders.next:
                raise SwitchRefused(f"The next pair changed while filling (now {now.next}); run fill again.")
            if now.active == encoders.next:  # switched meanwhile: the next vectors are the active ones
                raise SwitchRefused("The switch happened while filling; nothing left to fill.")
            for image, vector in zip(readable, vectors, strict=True):
                # By sha256 too: the same row, still the same content.
                Image.objects.using(using).filter(pk=image.pk, sha256=image.sha256).update(
                    embedding_next=vector, encoder_next=next_id
                )
        report.filled += len(readable)
        if on_batch:
            on_batch(report)
    return report


def next_index(column_type: str) -> EmbeddingHnswIndex:
    """The HNSW index of ``embedding_next``: the same build parameters as the model's own index."""
    (index,) = [i for i in Image._meta.indexes if i.name == INDEX]
    twin = EmbeddingHnswIndex(
        name=NEXT_INDEX, fields=["embedding_next"], m=index.m, ef_construction=index.ef_construction, opclasses=["x"]
    )
    return twin.for_vector_type(column_type)


def index_state(name: str = NEXT_INDEX, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """'ready', 'invalid' (a concurrent build that failed or is running) or 'absent'."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid AND i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
            [name],
        )
        row = cursor.fetchone()
    if row is None:
        return "absent"
    return "ready" if row[0] else "invalid"


def build_index(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """CREATE INDEX CONCURRENTLY on ``embedding_next`` (searches and writes go on); an invalid leftover is rebuilt."""
    connection = connections[using]
    if not connection.get_autocommit():
        raise SwitchRefused("build-index must run outside a transaction (CREATE INDEX CONCURRENTLY).")
    quote = connection.ops.quote_name
    column_type = vector_type_in_database(connection, Image, "embedding_next")
    with connection.cursor() as cursor:
        if index_state(using=using) == "invalid":
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(NEXT_INDEX)}")
        elif index_state(using=using) == "ready":
            return
        # Session settings: CONCURRENTLY cannot run in a transaction, so SET LOCAL would not hold.
        cursor.execute(
            "SELECT set_config('maintenance_work_mem', %s, false), set_config('max_parallel_maintenance_workers', %s, false)",
            [str(settings.HNSW_BUILD_MEMORY), str(int(settings.HNSW_BUILD_WORKERS))],
        )
        try:
            with connection.schema_editor(atomic=False) as editor:
                editor.execute(next_index(column_type).create_sql(Image, editor, concurrently=True))
        finally:
            cursor.execute("RESET maintenance_work_mem; RESET max_parallel_maintenance_workers")


def _swap_sql(quote) -> list[str]:
    table = quote(Image._meta.db_table)
    statements = []
    for a, b in (("embedding", "embedding_next"), ("encoder", "encoder_next")):
        statements += [
            f"ALTER TABLE {table} RENAME COLUMN {quote(a)} TO {quote(a + '_swap')}",
            f"ALTER TABLE {table} RENAME COLUMN {quote(b)} TO {quote(a)}",
            f"ALTER TABLE {table} RENAME COLUMN {quote(a + '_swap')} TO {quote(b)}",
        ]
    # The HNSW indexes follow their columns; their names swap so the model's index keeps its name.
    statements += [
        f"ALTER INDEX {quote(INDEX)} RENAME TO {quote(INDEX + '_swap')}",
        f"ALTER INDEX {quote(NEXT_INDEX)} RENAME TO {quote(INDEX)}",
        f"ALTER INDEX {quote(INDEX + '_swap')} RENAME TO {quote(NEXT_INDEX)}",
    ]
    return statements


def swap(*, expect: Pair | None = None, using: str = DEFAULT_DB_ALIAS) -> Encoders:
    """Swap the active and next pairs' columns and indexes; refuses unless the next column is complete and indexed.

    ``expect``: the pair that must be next (rollback says the previous one). The full check of
    completeness runs first, without locks; under the lock only the rows added since are checked
    again (every write during a switch stores both vectors, see ``columns``), so the lock is held
    for milliseconds.
    """
    encoders = read(using)
    if encoders.next is None:
        raise SwitchRefused("No switch is under way: set NEXT_CLIP_* and run `manage.py switch_encoder fill` first.")
    if expect is not None and encoders.next != expect:
        raise SwitchRefused(f"The other pair is {encoders.next}, not {expect}.")
    report = progress(encoders, using)
    if report.missing:
        raise SwitchRefused(
            f"{report.missing} of {report.total} embedded images have no vector from {encoders.next.image} yet: "
            f"run `manage.py switch_encoder fill` (it resumes)."
        )
    if (state := index_state(using=using)) != "ready":
        raise SwitchRefused(
            f"The HNSW index on embedding_next is {state}: run `manage.py switch_encoder build-index` first."
        )
    checked_up_to = Image.objects.using(using).order_by("-pk").values_list("pk", flat=True).first() or 0
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [SWAP_LOCK_TIMEOUT])
        cursor.execute(f"LOCK TABLE {Image._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        now = read(using)
        if now != encoders:
            raise SwitchRefused("The encoder pairs changed meanwhile; run the command again.")
        if late := _unfilled(encoders, using).filter(pk__gt=checked_up_to).count():
            raise SwitchRefused(f"{late} images came in without a next vector meanwhile: run fill again.")
        for statement in _swap_sql(connection.ops.quote_name):
            cursor.execute(statement)
        EncoderPairs.objects.using(using).filter(pk=ROW_ID).update(
            image_model=encoders.next.image,
            text_model=encoders.next.text,
            next_image_model=encoders.active.image,
            next_text_model=encoders.active.text,
            generation=encoders.generation + 1,
        )
    return read(using)


def drop(*, batch_size: int = 10_000, using: str = DEFAULT_DB_ALIAS) -> int:
    """Forget the other pair: no more writes of its vectors, its index dropped, its vectors cleared; returns rows cleared.

    Resumable: the pair is forgotten first, then the index goes (CONCURRENTLY), then the vectors
    are cleared in batches of ``batch_size`` rows, each its own short transaction.
    """
    connection = connections[using]
    with transaction.atomic(using=using):
        encoders = locked(using=using)
        if encoders.next is not None:
            EncoderPairs.objects.using(using).filter(pk=ROW_ID).update(
                next_image_model="", next_text_model="", generation=encoders.generation + 1
            )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {connection.ops.quote_name(NEXT_INDEX)}")
    cleared = 0
    while True:
        ids = list(
            Image.objects.using(using)
            .filter(embedding_next__isnull=False)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return cleared
        cleared += Image.objects.using(using).filter(pk__in=ids).update(embedding_next=None, encoder_next="")
