"""manage.py label_images: compute the zero-shot labels of every image whose labels are missing or stale."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from encoders.embeddings import EncoderUnavailable
from gallery import labels, switch


class Command(BaseCommand):
    help = (
        "Label the images from their stored vectors (no decoding) with the vocabulary (load_vocabulary): only "
        "those never labelled, or labelled with another vocabulary or encoder. Incremental and resumable: "
        "each chunk is committed, an interrupted run goes on where it stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=labels.CHUNK_SIZE, help="images per transaction")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, chunk_size, no_progress, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        try:
            vocab = labels.vocabulary()
        except EncoderUnavailable as exc:
            raise CommandError(str(exc)) from exc
        if vocab is None:
            raise CommandError("The vocabulary is empty: run manage.py load_vocabulary first.")
        total = labels.stale_count(vocab)
        self.stdout.write(f"{len(vocab.ids)} concepts (logit scale {vocab.scale:.2f}); {total} images to label.")
        with tqdm(total=total, unit="image", disable=no_progress, file=self.stderr) as bar:
            try:
                done = labels.label_images(chunk_size=chunk_size, progress=bar.update, vocab=vocab)
            except switch.PairChanged as exc:
                raise CommandError("The encoders changed during the run: run label_images again.") from exc
        self.stdout.write(self.style.SUCCESS(f"Labelled {done} images."))
