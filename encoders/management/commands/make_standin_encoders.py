"""Build offline stand-in encoders, so the site and its tests run where no weights can be downloaded.

The stand-ins have the right shapes (a 512-dimensional CLIP image encoder and a multilingual-style
text encoder) but random weights: the site runs, search returns results, but they mean nothing.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from encoders.standins import build_standins


class Command(BaseCommand):
    requires_system_checks = []
    help = "Build stand-in CLIP image and text encoders (random weights, no download) into DIR."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, help="Folder to write DIR/clip and DIR/text into.")
        parser.add_argument(
            "--full-size",
            action="store_true",
            help="Build the real architectures (CLIP ViT-B/32, DistilBERT-multilingual size) for benchmarks.",
        )

    def handle(self, *args, directory, full_size, **options):
        clip, text = build_standins(directory, dimensions=settings.EMBEDDING_DIMENSIONS, full_size=full_size)
        if options["verbosity"] >= 1:
            self.stderr.write(
                "Stand-in encoders built. They make the site run but do not understand images. "
                "Select them with (e.g. in .env):"
            )
        self.stdout.write(f"CLIP_IMAGE_MODEL={clip}")
        self.stdout.write(f"CLIP_TEXT_MODEL={text}")
