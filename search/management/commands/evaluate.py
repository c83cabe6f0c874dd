"""Measure what search finds in a labelled collection: mAP@k and recall, per language, from the index and exact.

It runs against whatever is embedded, with whatever encoders the settings name: the generated
world with its trained encoders (``make_world`` writes labels.csv and queries.csv), or a person's
own library with folders as labels and the real encoders.
"""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from encoders.embeddings import EncoderUnavailable
from search import evaluation


class Command(BaseCommand):
    help = "Report text-to-image and image-to-image mAP@k and recall for a labelled collection (table or --json)."

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?", type=Path, help="A folder with labels.csv and queries.csv.")
        parser.add_argument("--labels", type=Path, help="The labels file (path,labels); default DIR/labels.csv.")
        parser.add_argument(
            "--queries", type=Path, help="The queries file (query,language,labels); default DIR/queries.csv."
        )
        parser.add_argument("--folders-as-labels", action="store_true", help="Label each image by its folder instead.")
        parser.add_argument("-k", type=int, default=10, help="Results per query that count (default 10).")
        parser.add_argument(
            "--image-queries",
            type=int,
            default=1000,
            help="Images used as queries, spread evenly (default 1000; 0: all).",
        )
        parser.add_argument(
            "--queries-per-language", type=int, default=0, help="At most this many text queries per language (0: all)."
        )
        parser.add_argument("--mode", choices=[*evaluation.MODES, "both"], default="both", help="Index, exact or both.")
        parser.add_argument("--json", action="store_true", help="Print JSON for scripts instead of a table.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(
        self,
        *args,
        directory,
        labels,
        queries,
        folders_as_labels,
        k,
        image_queries,
        queries_per_language,
        mode,
        **options,
    ):
        if k < 1:
            raise CommandError("-k must be at least 1")
        labels = labels or (directory / "labels.csv" if directory else None)
        queries = queries or (directory / "queries.csv" if directory else None)
        if not folders_as_labels and labels is None:
            raise CommandError("Give DIR (with labels.csv), --labels FILE, or --folders-as-labels.")
        try:
            truth = (
                evaluation.truth_from_folders()
                if folders_as_labels
                else evaluation.truth_from_labels(evaluation.read_labels(labels))
            )
            asked = evaluation.read_queries(queries) if queries else []
            quiet = options["no_progress"] or options["verbosity"] < 1
            with tqdm(desc="evaluate", unit=" queries", file=sys.stderr, disable=quiet) as bar:
                report = evaluation.evaluate(
                    truth=truth,
                    queries=asked,
                    k=k,
                    image_queries=image_queries or None,
                    queries_per_language=queries_per_language or None,
                    modes=evaluation.MODES if mode == "both" else (mode,),
                    progress=bar.update,
                )
        except (evaluation.EvaluationError, EncoderUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        result = report.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False, indent=2))
        else:
            self._table(result)

    def _table(self, result: dict) -> None:
        k = result["k"]
        write = self.stdout.write
        write(
            f"{result['images']} labelled images, k={k}, ef_search={result['ef_search']}"
            + (
                f"; {result['unmatched_labels']} labelled paths not in the collection"
                if result["unmatched_labels"]
                else ""
            )
        )
        text = result["text_to_image"]
        if text:
            modes = list(text)
            first = text[modes[0]]["languages"]
            agreement = result["agreement"]["overlap_at_k"]
            reference = result["agreement"]["reference"]
            header = f"{'language':<10}{'queries':>8}"
            for name in (f"mAP@{k}", "R@1", f"R@{k}"):
                header += "".join(f"{name + ' ' + mode:>14}" for mode in modes)
            header += f"{'agree@' + str(k) + ' ' + reference:>14}"
            write("\nText to image")
            write(header)
            for language, row in first.items():
                line = f"{language or '-':<10}{row['queries']:>8}"
                for metric in ("map", "recall_1", "recall_k"):
                    line += "".join(f"{_fmt(text[mode]['languages'][language][metric]):>14}" for mode in modes)
                line += f"{_fmt(agreement.get(language)) if language != reference else '':>14}"
                write(line)
            write(
                f"{'mean':<18}"
                + "".join(f"{_fmt(text[mode]['map_mean']):>14}" for mode in modes)
                + "   lowest language mAP: "
                + ", ".join(f"{mode} {_fmt(text[mode]['map_min'])}" for mode in modes)
            )
        images = result["image_to_image"]
        if images:
            write("\nImage to image")
            for mode, row in images.items():
                write(
                    f"{mode:<8} {row['queries']} queries   mAP@{k} {_fmt(row['map'])}   R@1 {_fmt(row['recall_1'])}"
                    f"   R@{k} {_fmt(row['recall_k'])}"
                )


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
