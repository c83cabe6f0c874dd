"""Switch the encoder pair without downtime: fill, build-index, switch (or rollback), drop; status says where it stands.

Search goes on with the active pair's vectors the whole time; gallery/switch.py says how, and why
no search ever compares a query with another encoder's vectors. Set NEXT_CLIP_IMAGE_MODEL and
NEXT_CLIP_TEXT_MODEL to the new pair, then:

    manage.py switch_encoder fill          # resumable; new uploads get both vectors meanwhile
    manage.py switch_encoder build-index   # CREATE INDEX CONCURRENTLY on the new vectors
    manage.py switch_encoder switch        # milliseconds; every process follows without a restart
    manage.py switch_encoder rollback      # the same swap back, while the old vectors are kept
    manage.py switch_encoder drop          # forget the old pair and clear its vectors

Afterwards set CLIP_IMAGE_MODEL / CLIP_TEXT_MODEL to the new pair and empty NEXT_CLIP_* (the
database, not the settings, says which pair is active once a switch has happened:
``switch_encoder status`` shows it).
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from encoders.embeddings import EncoderUnavailable
from gallery import switch


class Command(BaseCommand):
    help = "Switch encoders without downtime: status | fill | build-index | switch | rollback | drop."

    def add_arguments(self, parser):
        parser.add_argument("step", choices=["status", "fill", "build-index", "switch", "rollback", "drop"])
        parser.add_argument("--batch-size", type=int, default=32, help="fill: images per encoder call.")
        parser.add_argument("--limit", type=int, default=None, help="fill: stop after this many images (resumes).")
        parser.add_argument(
            "--mark-failed",
            action="store_true",
            help="fill: mark images whose file cannot be read as failed (with the reason), so the switch can go on.",
        )

    def handle(self, *args, step, batch_size, limit, mark_failed, **options):
        self.verbosity = options["verbosity"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            getattr(self, "_" + step.replace("-", "_"))(batch_size=batch_size, limit=limit, mark_failed=mark_failed)
        except switch.SwitchRefused as exc:
            raise CommandError(str(exc)) from exc
        except (EncoderUnavailable, switch.PairChanged) as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(f"Database error, nothing half-done (rerun the step): {exc}") from exc

    def _status(self, **options):
        encoders = switch.read()
        self.stdout.write(f"Active pair: {encoders.active}" + ("" if encoders.recorded else " (from the settings)"))
        if encoders.next is None:
            self.stdout.write("No switch under way.")
            return
        report = switch.progress(encoders)
        share = report.filled / report.total if report.total else 1.0
        self.stdout.write(f"Next pair: {encoders.next}")
        self.stdout.write(f"Filled: {report.filled} of {report.total} embedded images ({share:.1%})")
        self.stdout.write(f"Index on the next vectors: {switch.index_state()}")

    def _fill(self, *, batch_size, limit, mark_failed):
        started = time.monotonic()
        verbosity = self.verbosity

        def on_batch(report):
            if verbosity >= 1:
                rate = report.filled / max(time.monotonic() - started, 1e-9)
                self.stderr.write(f"... {report.filled} of {report.total} filled ({rate:.1f} images/s this run)")

        report = switch.fill(batch_size=batch_size, limit=limit, mark_failed=mark_failed, on_batch=on_batch)
        for pk, reason in report.unreadable[:50]:
            self.stderr.write(f"image {pk}: {reason}")
        line = f"Filled {report.filled} of {report.total} embedded images."
        if report.missing:
            hint = "" if mark_failed else " (--mark-failed marks unreadable files failed)"
            self.stdout.write(self.style.WARNING(f"{line} {report.missing} still to do: run fill again{hint}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"{line} Next: `manage.py switch_encoder build-index`."))

    def _build_index(self, **options):
        started = time.monotonic()
        switch.build_index()
        self.stdout.write(
            self.style.SUCCESS(
                f"The HNSW index on the next vectors is ready ({time.monotonic() - started:.1f}s). "
                f"Next: `manage.py switch_encoder switch`."
            )
        )

    def _switch(self, **options):
        encoders = switch.swap()
        self.stdout.write(
            self.style.SUCCESS(
                f"Searching with {encoders.active} now; the vectors of {encoders.next} are kept up to date for "
                f"`switch_encoder rollback` until `switch_encoder drop`."
            )
        )

    def _rollback(self, **options):
        encoders = switch.read()
        if not encoders.recorded or encoders.next is None:
            raise CommandError("Nothing to roll back to: no other pair's vectors are kept.")
        encoders = switch.swap(expect=encoders.next)
        self.stdout.write(self.style.SUCCESS(f"Searching with {encoders.active} again."))

    def _drop(self, **options):
        before = switch.read()
        cleared = switch.drop()
        gone = before.next or "the other pair"
        self.stdout.write(self.style.SUCCESS(f"Forgot {gone}: cleared {cleared} vectors and dropped their index."))
