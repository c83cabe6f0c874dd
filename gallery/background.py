"""Background embedding: rows stored "pending" by the web or ``embed_images --queue``, embedded by Celery workers.

Off unless CELERY_BROKER_URL is set. The enqueuing side (``enqueue``) sends the ids of pending rows
in batches; the worker side (``embed_stored``, run by gallery/tasks.py) reads each file from the
default storage (never from a local path: the worker may be another machine), decodes it, writes
its thumbnail and then its vector, state "embedded", in one transaction per batch.

Nothing lost, nothing doubled:
- A task is acknowledged only when it is done (late ack); a worker that dies gives its batch back to
  the broker, which hands it to another worker (at once when a pool process dies, after the
  visibility timeout when the whole worker vanished).
- The work is idempotent: a task embeds only rows still pending, and rows are keyed by sha256, so a
  batch done twice writes nothing twice.
- Before the work, ``attempts`` is raised in its own committed transaction; a worker that lives to
  the end (success or an ordinary error) takes it back. So a batch that comes back with attempts > 0
  was held by a worker that died: it is redone one image at a time, and an image whose worker has
  died twice is marked failed with that reason instead of killing workers forever.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.module_loading import import_string

from encoders import embeddings

from . import labels, switch
from .imaging import UnreadableImage
from .metrics import IMAGES_EMBEDDED
from .models import Image
from .storage import save_once, thumbnail_name

logger = logging.getLogger(__name__)

# A worker that died this many times on an image (a decoder or encoder that crashes the process on
# it, or hangs it until the task's time limit kills it) has the image marked failed instead of being
# handed it again.
MAX_WORKER_DEATHS = 2
DIED_TWICE = (
    "the worker embedding it died twice (it crashed, or ran past EMBED_TASK_TIME_LIMIT: the file may crash "
    "or hang the decoder); not retried"
)
# Progress: images/s is measured over this many seconds.
RATE_WINDOW = 60


class EnqueueError(Exception):
    """The broker could not be reached: the images are stored and stay pending."""


def enabled() -> bool:
    """Whether embedding goes to workers (a broker is configured)."""
    return bool(settings.CELERY_BROKER_URL)


def _chunks(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def enqueue(ids: Sequence[int], *, queue: str | None = None, batch_size: int | None = None) -> int:
    """Send the ids, in tasks of ``batch_size`` (EMBED_TASK_BATCH), to ``queue`` (EMBED_QUEUE); tasks sent.

    Raises EnqueueError when the broker cannot be reached (after a short retry: a web request never
    hangs on it); what was sent before stays sent, and a task sent twice is harmless.
    """
    from kombu.exceptions import OperationalError

    from .tasks import embed_batch

    ids = sorted(set(ids))
    if not ids:
        return 0
    queue = queue or settings.EMBED_QUEUE
    sent = 0
    try:
        with embed_batch.app.producer_or_acquire() as producer:
            for chunk in _chunks(ids, batch_size or settings.EMBED_TASK_BATCH):
                # No time limit in the message: each worker applies its own EMBED_TASK_TIME_LIMIT (a GPU
                # fleet may set a shorter one than the web that sends).
                embed_batch.apply_async(
                    args=[chunk], queue=queue, producer=producer, retry=True, time_limit=None, soft_time_limit=None
                )
                sent += 1
    except (OperationalError, OSError) as exc:
        raise EnqueueError(f"the task queue ({queue}) could not be reached: {exc}") from exc
    return sent


def requeue(queryset) -> int:
    """Make the images pending again (attempts forgotten) and enqueue them; how many. Raises EnqueueError."""
    ids = list(queryset.exclude(state=Image.State.EMBEDDED).values_list("pk", flat=True))
    Image.objects.filter(pk__in=ids).update(state=Image.State.PENDING, error="", attempts=0, updated_at=timezone.now())
    enqueue(ids)
    return len(ids)


# The worker side


def embed_stored(ids: Sequence[int]) -> dict[str, int]:
    """Embed the pending images among ``ids``; counts of what happened (see the module docstring)."""
    rows = list(Image.objects.filter(pk__in=ids, state=Image.State.PENDING).order_by("pk"))
    counts = {"embedded": 0, "failed": 0, "skipped": len(set(ids)) - len(rows)}
    if not rows:
        return counts
    if all(row.attempts == 0 for row in rows):
        logger.info("embedding %d images", len(rows))
        _attempt(rows, counts)
        return counts
    # A worker died holding this batch: one image at a time, so only the culprit pays.
    logger.warning("a worker died holding these %d images: embedding them one at a time", len(rows))
    for row in rows:
        _attempt([row], counts)
    return counts


def _attempt(rows: list[Image], counts: dict[str, int]) -> None:
    ids = [row.pk for row in rows]
    # Committed before the work, so that it survives the worker's death.
    with transaction.atomic():
        Image.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1)
    if len(rows) == 1:
        rows[0].refresh_from_db(fields=["attempts", "state"])
        if rows[0].state != Image.State.PENDING:
            counts["skipped"] += 1
            return
        if rows[0].attempts > MAX_WORKER_DEATHS:
            # This attempt is not a death: attempts keeps counting deaths only.
            Image.objects.filter(pk=rows[0].pk).update(attempts=F("attempts") - 1)
            _fail(rows[0], DIED_TWICE, counts)
            return
    try:
        _embed(rows, counts)
    except Exception:
        _survived(ids)
        raise
    _survived(ids)


def _survived(ids: list[int]) -> None:
    """This attempt did not kill its worker: take it back. Not on SystemExit and the like: a worker
    stopped by its time limit gets SIGTERM (raising SystemExit in it) before SIGKILL, and that counts."""
    Image.objects.filter(pk__in=ids, attempts__gt=0).update(attempts=F("attempts") - 1)


def _fail(row: Image, reason: str, counts: dict[str, int]) -> None:
    Image.objects.filter(pk=row.pk, state=Image.State.PENDING).update(
        state=Image.State.FAILED, error=reason, updated_at=timezone.now()
    )
    counts["failed"] += 1


def _embed(rows: list[Image], counts: dict[str, int]) -> None:
    decode = import_string(settings.EMBED_DECODE_FUNCTION)
    ready = []
    for row in rows:
        try:
            with row.file.open("rb") as fh:  # from the storage: local disk, shared disk or S3
                decoded = decode(fh, thumbnail_size=settings.THUMBNAIL_SIZE, max_pixels=settings.IMAGE_MAX_PIXELS)
        except UnreadableImage as exc:
            _fail(row, str(exc), counts)
            continue
        except (OSError, ValueError) as exc:
            _fail(row, f"cannot read the stored file {row.file.name}: {exc}", counts)
            continue
        thumbnail = save_once(thumbnail_name(row.sha256), decoded.thumbnail)
        ready.append((row, decoded, thumbnail))
    if not ready:
        return
    images = [decoded.image for _, decoded, _ in ready]

    def write(encoders: switch.Encoders) -> None:
        # The active encoder's vectors, and the next one's while a switch is under way (gallery/switch.py).
        vectors = switch.encode_images(images, encoders)
        now, embedded = timezone.now(), 0
        with transaction.atomic():
            locked = switch.locked()
            for index, (row, decoded, thumbnail) in enumerate(ready):
                taken_at = row.taken_at
                if decoded.taken_at is not None:
                    taken_at = timezone.make_aware(decoded.taken_at, timezone.get_default_timezone())
                embedded += Image.objects.filter(pk=row.pk, state=Image.State.PENDING).update(
                    **switch.columns(switch.one(vectors, index), locked),
                    state=Image.State.EMBEDDED,
                    error="",
                    thumbnail=thumbnail,
                    width=decoded.width,
                    height=decoded.height,
                    format=decoded.format or row.format,
                    taken_at=taken_at,
                    updated_at=now,
                )
        counts["embedded"] += embedded  # after the commit: a retried write counts once
        IMAGES_EMBEDDED.inc(embedded)
        if embedded:
            transaction.on_commit(lambda: labels.label_new(ids=[row.pk for row, _, _ in ready]))

    try:
        switch.retrying(write)
    except embeddings.EncoderUnavailable as exc:
        # As an upload without a broker does: kept with the reason, to be queued again later.
        for row, _, _ in ready:
            _fail(row, str(exc), counts)


# Progress, for the admin and the API


def progress(*, failures: int = 10) -> dict:
    """Counts by state, images embedded per second over the last RATE_WINDOW s, and the latest failures.

    The rate counts embedded rows written in the window (their updated_at), by workers or not.
    """
    now = timezone.now()
    since = now - dt.timedelta(seconds=RATE_WINDOW)
    # count(*) by state is answered from the state index alone, and the window's rows are found by
    # the updated_at index: count(pk) with filters read every row (bench/README.md, "Background embedding").
    by_state = dict(Image.objects.order_by().values_list("state").annotate(n=Count("*")))
    totals = {
        state.value: by_state.get(state, 0) for state in (Image.State.PENDING, Image.State.EMBEDDED, Image.State.FAILED)
    }
    recent = Image.objects.filter(state=Image.State.EMBEDDED, updated_at__gte=since).count()
    latest = Image.objects.filter(state=Image.State.FAILED).order_by("-updated_at", "-pk")[:failures]
    return {
        **totals,
        "rate": round(recent / RATE_WINDOW, 2),
        "rate_window_seconds": RATE_WINDOW,
        "background": enabled(),
        "queue": settings.EMBED_QUEUE if enabled() else None,
        "queued_tasks": queue_length() if enabled() else None,
        "failures": [{"id": image.pk, "path": str(image), "error": image.error} for image in latest],
    }


def queue_length(queue: str | None = None) -> int | None:
    """Tasks waiting in ``queue`` (EMBED_QUEUE) at the broker, or None when it cannot be asked."""
    from .tasks import embed_batch

    try:
        with embed_batch.app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            return channel.queue_declare(queue=queue or settings.EMBED_QUEUE, passive=True).message_count
    except Exception as exc:  # any broker trouble: progress is still shown, without this number
        logger.warning("queue length unavailable: %s", exc)
        return None
