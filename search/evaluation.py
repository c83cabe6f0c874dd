"""How well search finds what it should: mAP@k and recall for a labelled collection (``manage.py evaluate``).

The truth is a labels file (``path,labels``: label tokens separated by spaces, as make_world writes
it, or a person's own) or, for a library with no labels, each image's folder as its label. Queries
come from a file (``query,language,labels``).

- Text to image: a picture is relevant to a query when it carries every label the query names.
- Image to image: each picture is a query (its own vector, itself excluded); pictures are alike
  when they carry the same plain labels. Labels written ``name:value`` (``background:sand``,
  ``count:2``) qualify a picture without saying what it shows, so they do not count here.
- Every ranking is taken twice through the search's own selector: from the HNSW index at the
  configured ef_search, and by exact search, so what the index loses is visible.

Metrics are encoders/metrics.py's (mAP@k as in the Towhee + Milvus evaluation).
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from encoders import embeddings, metrics
from gallery.models import Image

from . import selectors

MODES = ("index", "exact")


class EvaluationError(Exception):
    """The labels or queries cannot be used (no file, no match with the collection, no query)."""


@dataclass(frozen=True)
class Query:
    text: str
    language: str
    labels: frozenset[str]


@dataclass
class Truth:
    """The collection's labelled images: {image id: labels}."""

    labels: dict[int, frozenset[str]]
    unmatched: int = 0  # labelled paths with no embedded image

    def relevant_to(self, wanted: frozenset[str]) -> set[int]:
        return {pk for pk, labels in self.labels.items() if wanted <= labels}

    def groups(self) -> dict[int, frozenset[str]]:
        """What each image shows: its plain labels (``name:value`` qualifiers left out)."""
        return {pk: frozenset(label for label in labels if ":" not in label) for pk, labels in self.labels.items()}


@dataclass
class Scores:
    """The per-query figures of one ranking mode, kept so they can be averaged any way."""

    ap: list[float] = field(default_factory=list)
    recall_1: list[float] = field(default_factory=list)
    recall_k: list[float] = field(default_factory=list)

    def add(self, relevance: list[bool], *, k: int, total: int) -> None:
        self.ap.append(metrics.average_precision_at_k(relevance, k, total))
        self.recall_1.append(metrics.recall_at_k(relevance, 1, total))
        self.recall_k.append(metrics.recall_at_k(relevance, k, total))

    def summary(self) -> dict:
        mean = lambda values: round(statistics.fmean(values), 4) if values else None  # noqa: E731
        return {
            "queries": len(self.ap),
            "map": mean(self.ap),
            "recall_1": mean(self.recall_1),
            "recall_k": mean(self.recall_k),
        }


def _read_csv(path: Path, *, what: str, columns: set[str]) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise EvaluationError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from exc
    if rows and not columns <= set(rows[0]):
        raise EvaluationError(f"{path}: the {what} file needs the columns {', '.join(sorted(columns))}")
    return rows


def read_labels(path: Path) -> dict[str, frozenset[str]]:
    """A labels CSV (``path,labels``) as {path: labels}."""
    rows = _read_csv(path, what="labels", columns={"path", "labels"})
    return {row["path"]: frozenset(row["labels"].split()) for row in rows}


def read_queries(path: Path) -> list[Query]:
    """A queries CSV (``query,language,labels``; language may be empty)."""
    rows = _read_csv(path, what="queries", columns={"query", "labels"})
    return [
        Query(row["query"], row.get("language") or "", frozenset(row["labels"].split()))
        for row in rows
        if row["query"].strip() and row["labels"].strip()
    ]


def truth_from_labels(labels_by_path: dict[str, frozenset[str]]) -> Truth:
    """Match labelled paths to embedded images: the same path, or a path ending with it (a parent folder was embedded)."""
    by_path = dict(Image.objects.embedded().values_list("path", "pk"))
    labels, unmatched = {}, 0
    suffixes = defaultdict(list)
    for path, pk in by_path.items():
        parts = PurePosixPath(path).parts
        for start in range(1, len(parts)):
            suffixes[PurePosixPath(*parts[start:]).as_posix()].append(pk)
    for path, tokens in labels_by_path.items():
        pk = by_path.get(path)
        if pk is None and len(suffixes.get(path, ())) == 1:
            pk = suffixes[path][0]
        if pk is None:
            unmatched += 1
        else:
            labels[pk] = tokens
    return Truth(labels, unmatched)


def truth_from_folders() -> Truth:
    """Each embedded image labelled by its folder (for a library whose folders say what is in them)."""
    labels = {}
    for pk, path in Image.objects.embedded().values_list("pk", "path"):
        folder = PurePosixPath(path).parent.as_posix()
        if folder not in ("", "."):
            labels[pk] = frozenset([folder])
    return Truth(labels)


def ranked_ids(vector: np.ndarray, *, k: int, exact: bool, exclude_id: int | None = None) -> list[int]:
    """The ids of the search's top k for ``vector``, from the index or by exact search."""
    page = selectors.image_search_by_vector(vector, limit=k, exact=exact, exclude_id=exclude_id)
    return [image.pk for image in page.results]


@dataclass
class Report:
    k: int
    ef_search: int
    images: int
    unmatched: int
    text: dict[str, dict[str, Scores]] = field(default_factory=dict)  # mode -> language -> scores
    image: dict[str, Scores] = field(default_factory=dict)  # mode -> scores
    agreement: dict[str, list[float]] = field(default_factory=dict)  # language -> top-k overlaps with the reference
    reference_language: str = ""

    def as_dict(self) -> dict:
        text = {}
        for mode, by_language in self.text.items():
            rows = {language: scores.summary() for language, scores in sorted(by_language.items())}
            maps = [row["map"] for row in rows.values() if row["map"] is not None]
            text[mode] = {
                "languages": rows,
                "map_mean": round(statistics.fmean(maps), 4) if maps else None,
                "map_min": min(maps) if maps else None,
            }
        return {
            "k": self.k,
            "ef_search": self.ef_search,
            "images": self.images,
            "unmatched_labels": self.unmatched,
            "text_to_image": text,
            "image_to_image": {mode: scores.summary() for mode, scores in self.image.items()},
            "agreement": {
                "reference": self.reference_language,
                "overlap_at_k": {
                    language: round(statistics.fmean(values), 4) for language, values in sorted(self.agreement.items())
                },
            },
        }


def evaluate(
    *,
    truth: Truth,
    queries: list[Query],
    k: int = 10,
    image_queries: int | None = 1000,
    queries_per_language: int | None = None,
    modes: Iterable[str] = MODES,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Run every text query and (a sample of) every image as a query, in each mode; see the module docstring."""
    if not truth.labels:
        raise EvaluationError("no embedded image of the collection has a label: check the labels file's paths")
    modes = tuple(modes)
    report = Report(k=k, ef_search=selectors.ef_search_for(k), images=len(truth.labels), unmatched=truth.unmatched)
    tick = progress or (lambda n: None)
    if queries_per_language:
        queries = _spread(queries, queries_per_language)
    _text_to_image(report, truth, queries, modes, tick)
    _image_to_image(report, truth, image_queries, modes, tick)
    return report


def _spread(queries: list[Query], per_language: int) -> list[Query]:
    """At most ``per_language`` queries of each language, evenly spread over the file (the same ones every run)."""
    by_language = defaultdict(list)
    for query in queries:
        by_language[query.language].append(query)
    kept = []
    for asked in by_language.values():
        step = max(1, len(asked) / per_language)
        kept += [asked[int(i * step)] for i in range(min(per_language, len(asked)))]
    return kept


def _text_to_image(report: Report, truth: Truth, queries: list[Query], modes: tuple, tick) -> None:
    answerable = [(query, truth.relevant_to(query.labels)) for query in queries]
    answerable = [(query, relevant) for query, relevant in answerable if relevant]
    if not answerable:
        return
    vectors = embeddings.encode_texts([query.text for query, _ in answerable])
    # The first mode's top k per (labels, language): the same question asked in several languages.
    asked: dict[frozenset[str], dict[str, list[int]]] = defaultdict(dict)
    for mode in modes:
        by_language = report.text.setdefault(mode, defaultdict(Scores))
        for (query, relevant), vector in zip(answerable, vectors, strict=True):
            ids = ranked_ids(vector, k=report.k, exact=mode == "exact")
            by_language[query.language].add([pk in relevant for pk in ids], k=report.k, total=len(relevant))
            if mode == modes[0]:
                asked[query.labels].setdefault(query.language, ids)
            tick(1)
    _agreement(report, list(asked.values()))


def _agreement(report: Report, asked: list[dict[str, list[int]]]) -> None:
    """How much each language's top k agrees with the reference language's for the same labels."""
    languages = {language for ranked in asked for language in ranked}
    report.reference_language = "en" if "en" in languages else min(languages, default="")
    for ranked in asked:
        reference = ranked.get(report.reference_language)
        if reference is None:
            continue
        for language, ids in ranked.items():
            if language != report.reference_language:
                report.agreement.setdefault(language, []).append(metrics.top_k_overlap(reference, ids, report.k))


def _image_to_image(report: Report, truth: Truth, sample: int | None, modes: tuple, tick) -> None:
    groups = truth.groups()
    members = defaultdict(set)
    for pk, group in groups.items():
        if group:
            members[group].add(pk)
    candidates = sorted(pk for pk, group in groups.items() if group and len(members[group]) > 1)
    if sample is not None and len(candidates) > sample:
        # Evenly spread over the ids, so the same collection always gives the same sample.
        candidates = [candidates[i] for i in np.linspace(0, len(candidates) - 1, sample).round().astype(int)]
    vectors = dict(Image.objects.filter(pk__in=candidates).values_list("pk", "embedding"))
    for mode in modes:
        scores = report.image.setdefault(mode, Scores())
        for pk in candidates:
            relevant = members[groups[pk]] - {pk}
            ids = ranked_ids(
                np.asarray(vectors[pk], dtype=np.float32), k=report.k, exact=mode == "exact", exclude_id=pk
            )
            scores.add([other in relevant for other in ids], k=report.k, total=len(relevant))
            tick(1)
