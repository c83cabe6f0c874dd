"""Folder ingestion: walk -> hash -> skip what is known -> decode in threads -> embed in batches -> upsert.

Crash safety comes from the order of writes: a file and its thumbnail go to storage under names
derived from their content (rewriting them is harmless), then the row is written complete, with its
vector, by one upsert per batch inside a transaction. Killed at any moment, a rerun finds each file
either fully recorded (skipped) or not at all (done again); the unique sha256 keeps concurrent runs
from making duplicates.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from encoders import embeddings

from . import background, formats, switch
from .imaging import DecodedImage, UnreadableImage, probe
from .models import Image
from .services import ReadyImage, images_upsert, sha256_of
from .storage import image_name, media_relative, save_once, thumbnail_name
from .workers import DecodePool


@dataclass
class Outcome:
    """What happened to one file."""

    path: Path
    kind: str  # embedded | queued | unchanged | moved | skipped | failed | pending (dry run)
    reason: str = ""
    ready: ReadyImage | None = None  # decoded and stored, until its row is written
    relative: str = ""  # the path as recorded: relative to the folder given
    image_id: int | None = None  # queued: a row already pending, to be sent again


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, path, reason)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.kind] += 1
        if outcome.kind in ("skipped", "failed"):
            self.problems.append((outcome.kind, str(outcome.path), outcome.reason))


def iter_files(roots: Iterable[Path], errors: list[tuple[Path, str]]) -> Iterator[tuple[Path, Path]]:
    """Yield (root, file) for every regular file under each root; links leading out of the root are not followed."""
    for root in roots:
        root = Path(root).resolve()
        if root.is_file():
            yield root.parent, root
            continue

        def on_error(exc: OSError, root: Path = root) -> None:
            errors.append((Path(exc.filename or root), f"cannot read the folder: {exc.strerror}"))

        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=on_error):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(root):
                        errors.append((path, "symbolic link leading out of the folder, not followed"))
                        continue
                    if not target.is_file():
                        continue
                elif not path.is_file():
                    continue
                yield root, path


class Ingestor:
    """Runs one ingestion; see the module docstring for why it is crash-safe."""

    def __init__(
        self,
        *,
        batch_size: int = 32,
        workers: int = 2,
        reembed: bool = False,
        retry_failed: bool = False,
        dry_run: bool = False,
        file_timeout: float | None = None,
        decode_function: str = "gallery.imaging.decode",
        on_outcome: Callable[[Outcome], None] | None = None,
        queue: str | None = None,
    ):
        """``queue``: instead of embedding, store the files, write pending rows and send them to this
        Celery queue (gallery/background.py); a file's header is checked here, its pixels by the worker."""
        self.encoder_id = embeddings.image_encoder_id(switch.current().active.image)
        self.queue = queue
        self.queued_tasks = 0
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self.reembed = reembed
        self.retry_failed = retry_failed
        self.dry_run = dry_run
        self.on_outcome = on_outcome
        self.report = Report()
        self.decoders = DecodePool(
            timeout=file_timeout or settings.INGEST_FILE_TIMEOUT,
            thumbnail_size=settings.THUMBNAIL_SIZE,
            max_pixels=settings.IMAGE_MAX_PIXELS,
            function=decode_function,
        )

    # Worker side (threads): everything up to the encoder.
    def _prepare(self, root: Path, path: Path) -> Outcome:
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        # A file named like an image that cannot be used is a failure the admin shows; anything else
        # (a README, a .grb) is only skipped.
        unusable = "failed" if formats.for_file(path) else "skipped"
        try:
            return self._prepare_unsafe(root, path, relative)
        except UnreadableImage as exc:
            return Outcome(path, unusable, str(exc), relative=relative)
        except OSError as exc:
            return Outcome(path, unusable, f"cannot read: {exc.strerror or exc}", relative=relative)

    def _prepare_unsafe(self, root: Path, path: Path, relative: str) -> Outcome:
        stat = path.stat()
        size = stat.st_size
        if size == 0:
            raise UnreadableImage("empty file (0 bytes)")
        with open(path, "rb") as fh:
            sha = sha256_of(fh)
            known = Image.objects.filter(sha256=sha).values("id", "path", "state", "encoder").first()
            if known is not None:
                outcome = self._known(known, root, path, relative)
                if outcome is not None:
                    return outcome
            if self.dry_run:
                return Outcome(path, "pending", "would be embedded")
            if self.queue is not None:
                return self._prepare_queued(path, fh, sha, stat, relative)
            decoded = self.decoders.decode(path)
            file_time = dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)
            ready = ReadyImage(sha256=sha, path=relative, byte_size=size, decoded=decoded, file_time=file_time)
            in_media = media_relative(path)
            if in_media is not None:
                ready.file_name = in_media
            else:
                fh.seek(0)
                ready.file_name = save_once(image_name(sha, decoded.format), fh)
            ready.thumbnail_name = save_once(thumbnail_name(sha), decoded.thumbnail)
        return Outcome(path, "embedded", ready=ready, relative=relative)

    def _prepare_queued(self, path: Path, fh, sha: str, stat, relative: str) -> Outcome:
        """Header checked, file in storage (the worker reads it there, maybe on another machine)."""
        fmt, width, height = probe(fh)
        decoded = DecodedImage(image=None, width=width, height=height, format=fmt, taken_at=None, thumbnail=b"")
        file_time = dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)
        ready = ReadyImage(sha256=sha, path=relative, byte_size=stat.st_size, decoded=decoded, file_time=file_time)
        in_media = media_relative(path)
        ready.file_name = in_media if in_media is not None else save_once(image_name(sha, fmt), fh)
        return Outcome(path, "queued", ready=ready, relative=relative)

    def _known(self, known: dict, root: Path, path: Path, relative: str) -> Outcome | None:
        """The outcome for content already in the collection, or None when it must be embedded again."""
        if self.queue is not None and not self.dry_run:
            if known["state"] == Image.State.PENDING:
                # Sent again: a message lost with a broker's data costs nothing, a doubled one is skipped.
                return Outcome(path, "queued", "pending before, queued again", relative=relative, image_id=known["id"])
            if known["state"] == Image.State.FAILED and self.retry_failed:
                Image.objects.filter(pk=known["id"]).update(state=Image.State.PENDING, error="", attempts=0)
                return Outcome(path, "queued", "failed before, queued again", relative=relative, image_id=known["id"])
        if known["state"] == Image.State.FAILED and not self.retry_failed:
            return Outcome(path, "unchanged", "failed before; --retry-failed tries again")
        if known["state"] == Image.State.EMBEDDED and (known["encoder"] == self.encoder_id or not self.reembed):
            if known["path"] == relative:
                return Outcome(path, "unchanged")
            if known["path"] and (root / known["path"]).exists():
                return Outcome(path, "unchanged", f"same content as {known['path']}")
            if not self.dry_run:
                update = {"path": relative}
                if (in_media := media_relative(path)) is not None:
                    update["file"] = in_media
                Image.objects.filter(pk=known["id"]).update(**update)
            return Outcome(path, "moved", f"was {known['path']}")
        return None

    # Main side: the encoder and the database.
    def run(self, roots: Iterable[Path]) -> Report:
        if not self.dry_run and self.queue is None:  # fail before any work when an encoder cannot be loaded
            encoders = switch.current()
            for pair in (encoders.active, encoders.next):
                if pair is not None:
                    embeddings.get_image_encoder(pair.image)
        walk_errors: list[tuple[Path, str]] = []
        batch: list[Outcome] = []
        worker_connections = []

        def register_connection():
            # Each worker thread has its own connection; let the main thread close them at the end.
            wrapper = connections[DEFAULT_DB_ALIAS]
            wrapper.inc_thread_sharing()
            worker_connections.append(wrapper)

        pool = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="ingest", initializer=register_connection
        )
        try:
            pending: deque[Future] = deque()
            # Bounded read-ahead: enough to keep the encoder busy, not a folder's worth of decoded images.
            window = max(self.batch_size * 2, self.workers * 4)
            files = iter_files(roots, walk_errors)
            for root, path in files:
                pending.append(pool.submit(self._prepare, root, path))
                while len(pending) >= window or (pending and pending[0].done()):
                    self._collect(pending.popleft().result(), batch)
                self._drain_walk_errors(walk_errors)
            while pending:
                self._collect(pending.popleft().result(), batch)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.decoders.close()
            for wrapper in worker_connections:
                wrapper.close()
        self._flush(batch)
        self._drain_walk_errors(walk_errors)
        return self.report

    def _drain_walk_errors(self, errors: list[tuple[Path, str]]) -> None:
        while errors:
            path, reason = errors.pop()
            self._record(Outcome(path, "skipped", reason))

    def _collect(self, outcome: Outcome, batch: list[Outcome]) -> None:
        if outcome.ready is None and outcome.image_id is None:
            self._record(outcome)
            return
        if outcome.ready is None:  # a pending row to send again
            batch.append(outcome)
            if len(batch) >= self.batch_size:
                self._flush(batch)
            return
        twin = next((o for o in batch if o.ready and o.ready.sha256 == outcome.ready.sha256), None)
        if twin is not None:  # the same content twice in this batch: one row, like a rerun would find
            self._record(Outcome(outcome.path, "unchanged", f"same content as {twin.ready.path}"))
            return
        batch.append(outcome)
        if len(batch) >= self.batch_size:
            self._flush(batch)

    def _flush(self, batch: list[Outcome]) -> None:
        if not batch:
            return
        if self.queue is not None:
            self._flush_queued(batch)
            return
        images = [o.ready.decoded.image for o in batch]

        def write(encoders: switch.Encoders) -> None:
            # The active encoder's vectors, and the next one's while a switch is under way (gallery/switch.py).
            vectors = switch.encode_images(images, encoders, batch_size=self.batch_size)
            images_upsert([o.ready.row(vectors=switch.one(vectors, i)) for i, o in enumerate(batch)])

        switch.retrying(write)
        for outcome in batch:
            outcome.ready = None  # let the decoded image go
            self._record(outcome)
        batch.clear()

    def _flush_queued(self, batch: list[Outcome]) -> None:
        """Pending rows for the new files (never over an existing row), then their ids to the queue."""
        new = [o.ready for o in batch if o.ready is not None]
        if new:
            rows = [ready.row() | {"state": Image.State.PENDING} for ready in new]
            for row in rows:
                del row["vectors"]  # none yet: the worker embeds
            Image.objects.bulk_create(
                [Image(**row) for row in sorted(rows, key=lambda r: r["sha256"])], ignore_conflicts=True
            )
        ids = [o.image_id for o in batch if o.image_id is not None]
        ids += Image.objects.filter(sha256__in=[r.sha256 for r in new], state=Image.State.PENDING).values_list(
            "pk", flat=True
        )
        # One task for the batch: --batch-size images per worker task.
        self.queued_tasks += background.enqueue(ids, queue=self.queue, batch_size=self.batch_size)
        for outcome in batch:
            outcome.ready = None
            self._record(outcome)
        batch.clear()

    def _record(self, outcome: Outcome) -> None:
        if outcome.kind == "failed" and not self.dry_run:
            self._record_failure(outcome)
        self.report.add(outcome)
        if self.on_outcome:
            self.on_outcome(outcome)

    def _record_failure(self, outcome: Outcome) -> None:
        """Keep a row for an image file that cannot be used, so the admin shows why."""
        try:
            with open(outcome.path, "rb") as fh:
                sha = sha256_of(fh)
            size = outcome.path.stat().st_size
        except OSError:
            return
        if Image.objects.filter(sha256=sha, state=Image.State.EMBEDDED).exists():
            return
        Image.objects.update_or_create(
            sha256=sha,
            defaults={
                "file": media_relative(outcome.path) or "",
                "path": outcome.relative,
                "byte_size": size,
                "state": Image.State.FAILED,
                "error": outcome.reason,
            },
        )
