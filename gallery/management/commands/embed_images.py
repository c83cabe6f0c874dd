"""Embed every image under one or more folders into the collection.

This is how a library gets in: point it at a folder of 100,000 photos and leave it running. A rerun
costs a hash per file (known content is skipped, moved files get their new path), a corrupt file is
skipped with its reason, and a run killed at any moment is finished by the next one.

Files inside MEDIA_ROOT are used where they are; files elsewhere are copied into the default storage
(so it works with django-storages backends) under a name made from their content.

With ``--queue [NAME]`` (needs CELERY_BROKER_URL) nothing is embedded here: each new file is checked
(its header), copied into the storage as above, recorded as a pending row, and sent in batches of
--batch-size to the Celery queue NAME (EMBED_QUEUE by default), where workers embed it. The workers
read the file from the storage, never from the path given here, so they may run on other machines:
with S3 storage nothing is shared but the bucket; with the file system, MEDIA_ROOT must be the same
folder on every machine (as the web server needs anyway). A rerun sends again what is still pending.
"""

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from encoders.embeddings import EncoderUnavailable
from gallery.background import EnqueueError
from gallery.ingest import Ingestor
from gallery.storage import StorageWriteError


class Command(BaseCommand):
    help = "Embed the images under PATH (recursively) into the collection; rerunnable and resumable."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="Folders or files to embed.")
        parser.add_argument(
            "--batch-size", type=int, default=settings.EMBEDDING_BATCH_SIZE, help="Images per encoder call."
        )
        parser.add_argument("--workers", type=int, default=2, help="Threads decoding images while the encoder runs.")
        parser.add_argument("--reembed", action="store_true", help="Re-embed images made by another encoder.")
        parser.add_argument("--retry-failed", action="store_true", help="Try again files that failed before.")
        parser.add_argument(
            "--file-timeout",
            type=float,
            default=settings.INGEST_FILE_TIMEOUT,
            help="Seconds one file may take to decode before it is skipped.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; write nothing.")
        parser.add_argument(
            "--queue",
            nargs="?",
            const=settings.EMBED_QUEUE,
            default=None,
            metavar="NAME",
            help=f"Store and enqueue for Celery workers instead of embedding here (queue NAME, "
            f"default {settings.EMBED_QUEUE}: EMBED_QUEUE). Needs CELERY_BROKER_URL.",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="Plain periodic lines instead of a progress bar."
        )

    def handle(
        self,
        *args,
        paths,
        batch_size,
        workers,
        reembed,
        retry_failed,
        dry_run,
        file_timeout,
        no_progress,
        queue,
        **options,
    ):
        # torch's OpenMP threads spin while they wait, taking the CPU the decoding workers need;
        # passive waiting made ingestion faster overall (bench/README.md). Must be set before torch loads,
        # which happens when the first image is encoded, not on import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        for path in paths:
            if not path.exists():
                raise CommandError(f"{path}: no such file or folder")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if queue is not None:
            if not settings.CELERY_BROKER_URL:
                raise CommandError("--queue needs a task queue: set CELERY_BROKER_URL (README, Background embedding)")
            if not queue.strip():
                raise CommandError("--queue: the queue name is empty")
            if reembed:
                raise CommandError("--reembed runs here, not on the workers: run it without --queue")
        verbosity = options["verbosity"]
        progress = _Progress(self, enabled=verbosity >= 1, bar=not no_progress and sys.stderr.isatty())

        def on_outcome(outcome):
            progress.update(outcome)
            if outcome.kind in ("skipped", "failed") and verbosity >= 2:
                self.stderr.write(f"{outcome.kind}: {outcome.path}: {outcome.reason}")
            elif dry_run and verbosity >= 1:
                self.stdout.write(
                    f"{outcome.kind}: {outcome.path}" + (f" ({outcome.reason})" if outcome.reason else "")
                )

        ingestor = Ingestor(
            batch_size=batch_size,
            workers=workers,
            reembed=reembed,
            retry_failed=retry_failed,
            dry_run=dry_run,
            file_timeout=file_timeout,
            on_outcome=on_outcome,
            queue=queue,
        )
        try:
            report = ingestor.run(paths)
        except EncoderUnavailable as exc:
            raise CommandError(str(exc)) from exc
        except EnqueueError as exc:
            raise CommandError(f"The run stopped (rerun to resume): {exc}") from exc
        except StorageWriteError as exc:
            raise CommandError(f"Storage error, the run stopped (rerun to resume): {exc}") from exc
        except DatabaseError as exc:
            raise CommandError(f"Database error, the run stopped (rerun to resume): {exc}") from exc
        finally:
            progress.close()
        self._summary(report, dry_run=dry_run, verbosity=verbosity, queue=queue, tasks=ingestor.queued_tasks)

    def _summary(self, report, *, dry_run, verbosity, queue=None, tasks=0):
        counts = report.counts
        done = counts["queued"] if queue is not None else counts["embedded"]
        rate = done / report.elapsed if report.elapsed else 0.0
        if verbosity >= 1 and report.problems:
            for kind, path, reason in report.problems[:50]:
                self.stderr.write(f"{kind}: {path}: {reason}")
            if len(report.problems) > 50:
                self.stderr.write(f"... and {len(report.problems) - 50} more (see the admin's failed filter)")
        if queue is not None and not dry_run:
            first = f"Queued {counts['queued']} in {tasks} task(s) on queue {queue}"
        else:
            first = f"{'Would embed' if dry_run else 'Embedded'} {counts['pending'] if dry_run else done}"
        line = (
            f"{first}, "
            f"unchanged {counts['unchanged']}, moved {counts['moved']}, not an image {counts['skipped']}, "
            f"failed {counts['failed']}; {report.elapsed:.1f}s, {rate:.1f} images/s"
        )
        self.stdout.write(self.style.SUCCESS(line) if not counts["failed"] else self.style.WARNING(line))


class _Progress:
    """tqdm on a terminal; a plain line every PLAIN_EVERY files otherwise."""

    PLAIN_EVERY = 500

    def __init__(self, command, *, enabled, bar):
        self.command, self.enabled, self.seen, self.bar = command, enabled, 0, None
        if enabled and bar:
            from tqdm import tqdm

            self.bar = tqdm(unit="img", desc="embed_images", file=sys.stderr, dynamic_ncols=True)

    def update(self, outcome):
        self.seen += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled and self.seen % self.PLAIN_EVERY == 0:
            self.command.stderr.write(f"... {self.seen} files")

    def close(self):
        if self.bar is not None:
            self.bar.close()
