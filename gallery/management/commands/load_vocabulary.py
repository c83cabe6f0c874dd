"""manage.py load_vocabulary [--world]: write the shipped vocabulary of zero-shot labels into the database."""

from django.core.management.base import BaseCommand

from gallery import vocabulary


class Command(BaseCommand):
    help = (
        "Load the default vocabulary of zero-shot labels (gallery/data/vocabulary.txt), or with --world the "
        "generated world's (encoders/world.py). Concepts are matched by key; run label_images afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--world", action="store_true", help="load the generated world's vocabulary instead")

    def handle(self, *args, world, **options):
        if world:
            created, updated = vocabulary.load(vocabulary.world_concepts(), source="world")
        else:
            created, updated = vocabulary.load(vocabulary.read_default(), source="default")
        self.stdout.write(self.style.SUCCESS(f"{created} concepts created, {updated} updated."))
