"""manage.py make_world DIR --count N --seed S: write a generated, labelled picture world."""

from django.core.management.base import BaseCommand, CommandError

from encoders.world import make_world


class Command(BaseCommand):
    help = (
        "Write a generated picture world (JPEG/PNG/WebP in one folder per year, labels.csv, queries.csv) "
        "to DIR: the same --seed always gives the same files. See encoders/world.py for the label tokens."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", help="folder to write into (created if missing)")
        parser.add_argument("--count", type=int, default=1000, help="how many pictures (default 1000)")
        parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")

    def handle(self, *args, directory, count, seed, **options):
        if count < 1:
            raise CommandError("--count must be at least 1.")
        step = max(1, count // 10)

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                self.stdout.write(f"  {done}/{total} pictures")

        try:
            make_world(directory, count=count, seed=seed, progress=progress)
        except OSError as exc:
            raise CommandError(f"Cannot write the world to {directory}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {count} pictures, labels.csv and queries.csv to {directory}"))
