"""World labels: label precision@3 and recall@3 of the trained encoders on a generated world.

Draws a world (encoders/world.py; seed 11 is the tests' held-out one, never trained on), decodes and
encodes every picture as ingestion does with the trained encoders (encoders/trained), loads the
vectors into its own embedded database, loads the world's vocabulary (``load_vocabulary --world``:
its kinds, colours and backgrounds), runs ``label_images`` and compares each picture's three most
probable stored labels with its tokens in labels.csv. One JSON line.

    .venv/bin/python -m bench.world_labels --count 2000 --seed 11
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.common import argument_parser, load_rows, setup_django

TRAINED = Path(__file__).resolve().parent.parent / "encoders" / "trained"


def main() -> None:
    parser = argument_parser(__doc__, "bench.world_labels")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    setup_django(
        migrate=True,
        DEBUG="1",
        EMBEDDED_DB_NAME="bench_world_labels",
        CLIP_IMAGE_MODEL=str(TRAINED / "world-image"),
        CLIP_TEXT_MODEL=str(TRAINED / "world-text"),
    )
    from django.core.management import call_command

    from encoders import embeddings, world
    from gallery import labels, vocabulary
    from gallery.imaging import decode
    from gallery.models import Concept

    with tempfile.TemporaryDirectory() as folder:
        specs = world.make_world(folder, count=args.count, seed=args.seed)
        truth_by_path = world.read_labels(folder)
        images = []
        for spec in specs:
            with open(Path(folder) / spec.path, "rb") as handle:
                images.append(decode(handle).image)
    vectors = embeddings.encode_images(images)
    load_rows(np.asarray(vectors, dtype=np.float32), path_of=lambda row: specs[row].path)

    Concept.objects.all().delete()
    call_command("load_vocabulary", "--world", stdout=io.StringIO())
    call_command("label_images", "--no-progress", stdout=io.StringIO())
    tokens = {vocabulary.world_token(key) for key, _ in vocabulary.world_concepts()}
    from gallery.models import Image

    precision, recall = [], []
    for image_id, path in Image.objects.values_list("id", "path"):
        truth = set(truth_by_path[path]) & tokens
        top = {vocabulary.world_token(c.key) for c, _ in labels.image_labels(image_id)[:3]}
        hits = len(top & truth)
        precision.append(hits / 3)
        recall.append(hits / len(truth))
    print(
        json.dumps(
            {
                "pictures": len(precision),
                "seed": args.seed,
                "concepts": len(tokens),
                "logit_scale": round(labels.vocabulary().scale, 2),
                "precision_at_3": round(float(np.mean(precision)), 3),
                "recall_at_3": round(float(np.mean(recall)), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
