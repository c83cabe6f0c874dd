"""Reads: turning a query into ranked images from the HNSW index.

Every search is one ``ORDER BY embedding <=> query LIMIT depth`` answered by the HNSW index
(``gallery_image_embedding_hnsw``, cosine), with the settings below made ``SET LOCAL`` in the
search's own transaction so they never leak into other queries on a pooled connection:

- The HNSW index answers (sorting is turned off so the planner cannot choose otherwise), with
  ``hnsw.ef_search`` covering offset + limit (within pgvector's cap of 1000). The index hands up at
  most ef_search candidates per pass, so a deep page with the default ef_search would be cut
  short or, worse, be the best of a too-small candidate list. Paging is therefore capped at
  ``SEARCH_MAX_DEPTH`` results.
- ``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8): when a filter (folder, dates, format,
  "not the image itself") throws candidates away, the index keeps walking the graph until the
  page is full instead of returning a short page. Relaxed order finds more than strict order
  (which drops every candidate nearer than one already returned), at the price of slightly out
  of order rows; a MATERIALIZED CTE takes the first ``depth`` rows from the index and the outer
  query sorts them by distance again, so what people see is in exact order.
- A filter that leaves few rows (``EXACT_SEARCH_MAX_ROWS``) is answered by exact search instead:
  index scans are turned off, so PostgreSQL compares the query with each remaining vector
  (the filter's B-tree indexes still work as bitmap scans, which HNSW cannot do). Exact search
  also answers whenever the index comes back with a short page (the walk gave up after
  ``hnsw.max_scan_tuples``, or the collection ends), so a filtered search always returns a
  full page when that many images match.

Paging: raising ef_search from one page to the next improves recall, so the deeper search may
find an image the shallower one missed, and plain OFFSET would then show the last image of the
previous page again. A page therefore also takes a cursor (``after``: the distance and id of
the last image shown), and continues strictly after it: no image is ever shown twice. Offset
still sizes ef_search and numbers the results; without a cursor it is a plain OFFSET. Each search
returns a ``SearchPage``: its images and where the next page starts, known from one row fetched
beyond the page; the page (site) and the API only translate it.

Read replicas (DATABASE_REPLICA_URLS, config/replicas.py): each search runs on one database alias
that ``replicas.read`` picks, every statement of it (the settings above included) on that alias's
connection; a replica that fails hands the search to the primary. Looking up one image asks the
primary when the replica does not have it yet (it lags behind an upload).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from config import replicas
from encoders import embeddings
from gallery import formats, labels, switch
from gallery.models import Concept, Image, ImageLabel

from . import metrics, query, timing

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from django.db.models import QuerySet

# pgvector refuses a larger hnsw.ef_search.
EF_SEARCH_MAX = 1000
# How deep paging goes: every page up to here is covered by ef_search.
SEARCH_MAX_DEPTH = 1000
# Filtered sets up to this size are searched exactly (a few milliseconds at 512 dimensions).
EXACT_SEARCH_MAX_ROWS = 2000
# What a result needs (the 2 KB vector stays in the database).
RESULT_FIELDS = ("id", "file", "thumbnail", "path", "width", "height", "format", "byte_size", "taken_at")

# The outer ORDER BY says "distance + 0" so PostgreSQL (17+) cannot reuse the CTE's claimed
# order (which relaxed_order breaks) and really sorts; id breaks ties so pages never overlap.
_PAGE_SQL = "WITH nearest AS MATERIALIZED ({inner}) SELECT * FROM nearest ORDER BY distance + 0, id LIMIT %s OFFSET %s"


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last image's distance and id (the ranking's sort key)."""

    distance: float
    id: int

    def __str__(self) -> str:
        return f"{self.distance!r}_{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor written by ``str()``; raises ValueError for anything else."""
        distance, _, pk = text.partition("_")
        cursor = cls(float(distance), int(pk))
        if not math.isfinite(cursor.distance) or cursor.id < 1:
            raise ValueError(text)
        return cursor


@dataclass(frozen=True)
class SearchPage:
    """One page of ranked images, and where the next one starts (both None at the end)."""

    results: list[Image]
    offset: int
    next: Cursor | None = None
    next_offset: int | None = None

    @classmethod
    def of(cls, images: list[Image], *, offset: int, limit: int) -> SearchPage:
        """The page of ``limit`` from ``images``, which hold one more when there is a next page."""
        results = images[:limit]
        if len(images) > limit and offset + limit < SEARCH_MAX_DEPTH:
            last = results[-1]
            return cls(results, offset, next=Cursor(last.distance, last.pk), next_offset=offset + limit)
        return cls(results, offset)

    @property
    def first_rank(self) -> int:
        return self.offset + 1

    @property
    def last_rank(self) -> int:
        return self.offset + len(self.results)


@dataclass(frozen=True)
class ImageFilters:
    """What a search may be narrowed to: a path prefix, a range of dates taken, a format."""

    path_prefix: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None  # inclusive
    format: str = ""
    path_contains: tuple[str, ...] = ()  # exact text each path holds (quoted text in the search box)
    # label:NAME in the search box: for each, the concepts so named; an image must carry one of each.
    label_concepts: tuple[tuple[int, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.path_prefix
            or self.date_from
            or self.date_to
            or self.format
            or self.path_contains
            or self.label_concepts
        )

    def apply(self, queryset: QuerySet[Image]) -> QuerySet[Image]:
        if prefix := self.path_prefix.lstrip("/"):
            # LIKE 'prefix%': served by the varchar_pattern_ops index on path.
            queryset = queryset.filter(path__startswith=prefix)
        if self.date_from:
            queryset = queryset.filter(taken_at__gte=_start_of_day(self.date_from))
        if self.date_to and self.date_to < dt.date.max:  # the last day there is has no day after it
            queryset = queryset.filter(taken_at__lt=_start_of_day(self.date_to + dt.timedelta(days=1)))
        if self.format:
            # Pillow names some formats differently from what people ask for (JPG, HEIC, MPO).
            queryset = queryset.filter(format__in=formats.stored_names(self.format))
        for text in self.path_contains:
            queryset = queryset.filter(path__icontains=text)
        for concept_ids in self.label_concepts:
            queryset = labels.carrying(queryset, list(concept_ids))
        return queryset


def filters_from_box(parsed: query.ParsedQuery, filters: ImageFilters | None = None) -> ImageFilters:
    """``filters`` where the search box's own (folder:, type:, taken:) take the place of the same ones."""
    filters = filters or ImageFilters()
    changes = {}
    if parsed.folder:
        # A folder, not any prefix: "2024/trip" must not also match "2024/trip-2".
        changes["path_prefix"] = f"{parsed.folder}/"
    if parsed.format:
        changes["format"] = parsed.format
    if parsed.taken_from or parsed.taken_to:
        changes.update(date_from=parsed.taken_from, date_to=parsed.taken_to)
    return dataclasses.replace(filters, **changes)


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def ef_search_for(depth: int) -> int:
    """hnsw.ef_search for a page ending at ``depth``: at least the configured value, at most pgvector's cap."""
    return min(max(settings.HNSW_EF_SEARCH, depth), EF_SEARCH_MAX)


def _configure_scan(*, depth: int, exact: bool, using: str) -> None:
    # Index or exact is decided here, not by the planner: pgvector's cost estimate flips to a full
    # scan and sort at some ef_search values (measured at 100,000 rows: ef_search 600 planned a
    # 400 ms sequential scan, where ef_search 400 took 19 ms on the index), so deep pages would
    # fall off a cliff (bench/README.md, "Search").
    # With sorting disabled the only way to the first rows in order is the HNSW index; exact
    # search turns index scans off instead. JIT never pays for queries this short.
    with connections[using].cursor() as cursor:
        # Every search sets them all, so none inherits another's (tests nest searches in one transaction).
        for statement, params in scan_settings_sql(depth=depth, exact=exact, citus=on_citus(connections[using])):
            cursor.execute(statement, params)


def scan_settings(*, depth: int, exact: bool) -> dict[str, str]:
    """The settings one search runs with (``_configure_scan``), each for its own transaction only."""
    return {
        "enable_indexscan": "off" if exact else "on",
        "enable_sort": "on" if exact else "off",
        "jit": "off",
        "hnsw.ef_search": str(int(ef_search_for(depth))),
        "hnsw.iterative_scan": "relaxed_order",
    }


def scan_settings_sql(*, depth: int, exact: bool, citus: bool = False) -> list[tuple[str, list]]:
    """The statements that give a search its settings: one set_config(..., true) query, or SET LOCAL on Citus.

    Citus sends a transaction's ``SET LOCAL`` commands to the shards it queries when
    ``citus.propagate_set_commands`` is 'local', but not values given with set_config() (measured
    with Citus 14, docs/scaling.md): without them every shard would search with its own ef_search.
    SET takes no parameters; the values are the fixed words and the whole number above.
    """
    values = scan_settings(depth=depth, exact=exact)
    if not citus:
        calls = ", ".join("set_config(%s, %s, true)" for _ in values)
        return [(f"SELECT {calls}", [item for pair in values.items() for item in pair])]
    statements = [("SET LOCAL citus.propagate_set_commands = 'local'", [])]
    return statements + [(f"SET LOCAL {name} = '{value}'", []) for name, value in values.items()]


# Connections known to be on a Citus coordinator, or not: asked once per database connection.
_citus_connections: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def on_citus(wrapper) -> bool:
    """Whether the database behind ``wrapper`` (a Django connection) has the citus extension installed."""
    wrapper.ensure_connection()
    raw = wrapper.connection
    known = _citus_connections.get(raw)
    if known is None:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
            known = _citus_connections[raw] = cursor.fetchone()[0]
    return known


def _page(queryset: QuerySet[Image], *, limit: int, offset: int, after: Cursor | None, exact: bool) -> list[Image]:
    """Rows offset..offset+limit of ``queryset`` (ordered by distance), or the ``limit`` after ``after``.

    Call inside a transaction on the queryset's database.
    """
    using = queryset.db
    _configure_scan(depth=offset + limit, exact=exact, using=using)
    if after is not None:
        queryset = queryset.filter(Q(distance__gt=after.distance) | Q(distance=after.distance, pk__gt=after.id))
        offset = 0
    inner, params = queryset.values(*RESULT_FIELDS, "distance")[: offset + limit].query.get_compiler(using).as_sql()
    return list(Image.objects.raw(_PAGE_SQL.replace("{inner}", inner), (*params, limit, offset), using=using))


def _is_small(queryset: QuerySet[Image]) -> bool:
    # A bounded count: it stops at EXACT_SEARCH_MAX_ROWS + 1, so a broad filter costs next to nothing.
    return queryset.order_by().values("pk")[: EXACT_SEARCH_MAX_ROWS + 1].count() <= EXACT_SEARCH_MAX_ROWS


def _ranked(
    vector: np.ndarray,
    *,
    limit: int,
    offset: int,
    after: Cursor | None,
    filters: ImageFilters | None,
    exclude_id: int | None,
    exact: bool = False,
    using: str,
    generation: int | None = None,
) -> list[Image]:
    """The images ranked offset..offset+limit by nearness to ``vector`` (or the ``limit`` after ``after``), read from ``using``.

    ``generation``: the encoder pairs' generation ``vector`` was made for; checked after each query
    in its transaction (gallery.switch.check), raising switch.PairChanged if the columns were
    swapped under it, so a query vector is never compared with another encoder's vectors.
    """
    queryset = Image.objects.using(using).nearest_to(vector)
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    if filters:
        queryset = filters.apply(queryset)
    page = functools.partial(_page, queryset, limit=limit, offset=offset, after=after)
    with timing.measure("db"), transaction.atomic(using=using):
        exact = exact or (bool(filters) and _is_small(queryset))
        images = page(exact=exact)
        if generation is not None:
            switch.check(generation, using=using)
    if not exact and len(images) < limit:
        # The index came back short: the graph walk gave up on a narrow filter, or the collection
        # ends here. Exact search says which, with a full page where there is one.
        with timing.measure("db"), transaction.atomic(using=using):
            images = page(exact=True)
            if generation is not None:
                switch.check(generation, using=using)
    for image in images:
        image.score = 1.0 - image.distance
    return images


def image_search_by_vector(
    vector: np.ndarray,
    *,
    limit: int,
    offset: int = 0,
    after: Cursor | None = None,
    filters: ImageFilters | None = None,
    exclude_id: int | None = None,
    exact: bool = False,
    generation: int | None = None,
) -> SearchPage:
    """The page of ``limit`` images from ``offset`` (or after the cursor ``after``) by nearness to ``vector``.

    Each image has ``distance`` and ``score``. The page ends by SEARCH_MAX_DEPTH. ``exact`` compares
    the query with every vector instead of asking the index (``manage.py evaluate`` measures both).
    ``generation``: that of the encoder pairs ``vector`` was encoded with (gallery.switch); if the
    encoders were switched since, raises EncoderUnavailable (asking to try again) rather than
    compare vectors of two encoders.
    """
    try:
        return _by_vector(
            vector,
            limit=limit,
            offset=offset,
            after=after,
            filters=filters,
            exclude_id=exclude_id,
            exact=exact,
            generation=generation,
        )
    except switch.PairChanged as exc:
        raise embeddings.EncoderUnavailable(
            embeddings.IMAGE_SETTING, "The search encoders were switched just now; search again."
        ) from exc


def _by_vector(vector, *, limit: int, offset: int, **options) -> SearchPage:
    limit = max(0, min(limit, SEARCH_MAX_DEPTH - offset))
    if limit == 0:
        return SearchPage([], offset)
    # One row more than the page says whether there is a next one (it also counts in ef_search).
    images = replicas.read(lambda using: _ranked(vector, limit=limit + 1, offset=offset, using=using, **options))
    return SearchPage.of(images, offset=offset, limit=limit)


def image_search_by_text(
    text: str, *, limit: int, offset: int = 0, after: Cursor | None = None, filters: ImageFilters | None = None
) -> SearchPage:
    """Images matching a description in any language (raises embeddings.EncoderUnavailable).

    The query is encoded by the text encoder paired with the image encoder whose vectors are
    searched (gallery.switch), encoded again should the encoders be switched meanwhile.
    """

    def search(encoders: switch.Encoders) -> SearchPage:
        with timing.measure("encode"):
            vector = _text_vector(text, encoders.active.text)
        return _by_vector(
            vector,
            limit=limit,
            offset=offset,
            after=after,
            filters=filters,
            exclude_id=None,
            generation=encoders.generation,
        )

    with metrics.timed("text"):
        return switch.on_active_pair(search)


class NothingToSearch(ValueError):
    """The terms of a query cancel out ("cats - cats"): their sum has no direction to search in."""


def image_search_by_terms(
    terms: Sequence[tuple[float, str | int]],
    *,
    limit: int,
    offset: int = 0,
    after: Cursor | None = None,
    filters: ImageFilters | None = None,
) -> SearchPage:
    """Images nearest to a weighted sum of descriptions and images: ``terms`` are (weight, text or image id).

    Each description is encoded with the active text encoder (gallery.switch), each image's stored
    vector read; every vector is normalized before it is weighed, so a weight says how much a term
    counts whatever its vector's length. A negative weight subtracts. Images of the collection that
    do not exist (or are not embedded) count for nothing; raises NothingToSearch when the sum is zero.
    A lone image term excludes that image itself, as the search for similar images does.
    """
    ids = [item for _, item in terms if isinstance(item, int)]
    lone_image = ids[0] if len(terms) == 1 and ids else None

    def search(encoders: switch.Encoders) -> SearchPage:
        stored = {}
        if ids:
            stored = replicas.read(
                lambda using: dict(
                    Image.objects.using(using).embedded().filter(pk__in=ids).values_list("pk", "embedding")
                )
            )
        total = np.zeros(settings.EMBEDDING_DIMENSIONS, dtype=np.float64)
        with timing.measure("encode"):
            for weight, item in terms:
                if isinstance(item, int):
                    if item not in stored:
                        continue
                    vector = np.asarray(stored[item].to_list() if hasattr(stored[item], "to_list") else stored[item])
                else:
                    vector = _text_vector(item, encoders.active.text)
                vector = np.asarray(vector, dtype=np.float64)
                norm = float(np.linalg.norm(vector))
                if norm > 0 and np.isfinite(norm):
                    total += weight * vector / norm
        norm = float(np.linalg.norm(total))
        if not np.isfinite(norm) or norm < 1e-6:
            raise NothingToSearch("These terms cancel out: there is nothing left to look for.")
        return _by_vector(
            (total / norm).astype(np.float32),
            limit=limit,
            offset=offset,
            after=after,
            filters=filters,
            exclude_id=lone_image,
            generation=encoders.generation,
        )

    with metrics.timed("text"):
        return switch.on_active_pair(search)


def embedded_ids(ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` that are embedded images (what a like:ID term can stand for)."""
    if not ids:
        return set()
    return set(
        replicas.read(
            lambda using: list(Image.objects.using(using).embedded().filter(pk__in=ids).values_list("pk", flat=True))
        )
    )


def image_search_by_query(
    parsed: query.ParsedQuery,
    *,
    limit: int,
    offset: int = 0,
    after: Cursor | None = None,
    filters: ImageFilters | None = None,
) -> tuple[SearchPage | None, list[str]]:
    """The search a query of the search box asks for (search/query.py), and what to tell the person about it.

    Plain text is searched as ``image_search_by_text`` does; terms combine (``image_search_by_terms``);
    quoted text narrows to paths holding it (and is the description when there is no other). The
    notes are the parser's problems and the terms left out; the page is None when nothing is left
    to look for (the notes say why). Raises EncoderUnavailable as the text search does.
    """
    notes = [str(problem) for problem in parsed.problems]
    label_concepts = []
    for name in parsed.labels:
        concept_ids = tuple(replicas.read(lambda using, name=name: labels.concepts_named(name, using=using)))
        if concept_ids:
            label_concepts.append(concept_ids)
        else:
            notes.append(f"label:{name}: there is no such label in the vocabulary (the admin's Concepts); left out.")
    if label_concepts:
        filters = dataclasses.replace(filters or ImageFilters(), label_concepts=tuple(label_concepts))
    if parsed.keywords:
        filters = dataclasses.replace(filters or ImageFilters(), path_contains=parsed.keywords)
    ids = [term.image_id for term in parsed.terms if term.image_id is not None]
    found = embedded_ids(ids)
    notes.extend(
        f"like:{pk}: there is no searchable image {pk} in the collection; left out." for pk in ids if pk not in found
    )
    terms = [
        (term.weight, term.text if term.image_id is None else term.image_id)
        for term in parsed.terms
        if term.image_id is None or term.image_id in found
    ]
    if not terms and parsed.keywords:
        terms = [(1.0, " ".join(parsed.keywords))]
    if not terms and label_concepts:
        # label:star alone: the images carrying it, nearest to its names first.
        terms = [(1.0, " ".join(parsed.labels))]
    if not terms:
        notes.append("There is nothing to look for: describe the picture, e.g. “a dog on the beach”.")
        return None, notes
    if all(weight < 0 for weight, _ in terms):
        return None, notes  # the parser said so
    options = {"limit": limit, "offset": offset, "after": after, "filters": filters}
    if len(terms) == 1 and terms[0][0] == 1 and isinstance(terms[0][1], str):
        return image_search_by_text(terms[0][1], **options), notes
    try:
        return image_search_by_terms(terms, **options), notes
    except NothingToSearch as exc:
        return None, [*notes, str(exc)]


# The next page of the same query reuses its vector: the same vector, the same ranking.
@functools.lru_cache(maxsize=256)
def _text_vector(text: str, encoder: str):
    vector = embeddings.encode_text(text, model=encoder)
    vector.flags.writeable = False
    return vector


def image_search_similar(
    image: Image, *, limit: int, offset: int = 0, after: Cursor | None = None, filters: ImageFilters | None = None
) -> SearchPage:
    """Images nearest to ``image``, itself excluded (no encoder needed: its vector is stored).

    Should the encoders be switched between reading ``image`` and searching, its vector is read again.
    """

    def search(encoders: switch.Encoders) -> SearchPage:
        vector = image.embedding
        if encoders.generation != getattr(image, "_generation", encoders.generation):
            vector = replicas.read(
                lambda using: Image.objects.using(using).values_list("embedding", flat=True).get(pk=image.pk)
            )
        image._generation = encoders.generation
        return _by_vector(
            vector,
            limit=limit,
            offset=offset,
            after=after,
            filters=filters,
            exclude_id=image.pk,
            generation=encoders.generation,
        )

    with metrics.timed("similar"):
        return switch.on_active_pair(search)


def embedded_image_get(*, pk: int) -> Image | None:
    """The embedded image ``pk`` with its vector, or None."""
    return replicas.read(
        lambda using: Image.objects.using(using).embedded().filter(pk=pk).first(), missing=lambda image: image is None
    )


def image_get(*, pk: int) -> Image | None:
    """The image ``pk`` (embedded or not) without its vector, for its page; or None."""
    return replicas.read(
        lambda using: Image.objects.using(using).defer("embedding").filter(pk=pk).first(),
        missing=lambda image: image is None,
    )


def image_labels(*, pk: int) -> list[tuple[Concept, float]] | None:
    """The stored labels of the embedded image ``pk``, most probable first; None when there is no such image."""

    def query(using: str):
        if not Image.objects.using(using).embedded().filter(pk=pk).exists():
            return None
        return labels.image_labels(pk, using=using)

    return replicas.read(query, missing=lambda found: found is None)


def labels_of_images(ids: list[int]) -> dict[int, list[tuple[Concept, float]]]:
    """{image id: its stored labels, most probable first} for a page of results, in one query."""
    if not ids:
        return {}

    def query(using: str) -> dict[int, list[tuple[Concept, float]]]:
        found: dict[int, list[tuple[Concept, float]]] = {}
        rows = (
            ImageLabel.objects.using(using)
            .filter(image_id__in=ids)
            .select_related("concept")
            .order_by("image_id", "-probability")
        )
        for label in rows:
            found.setdefault(label.image_id, []).append((label.concept, label.probability))
        return found

    return replicas.read(query)


FACETS = 8


@dataclass(frozen=True)
class Facet:
    concept: Concept
    count: int  # how many of the results carry it


def label_facets(
    found: dict[int, list[tuple[Concept, float]]], *, exclude: Sequence[str] = (), limit: int = FACETS
) -> list[Facet]:
    """The labels most common among a page of results (``labels_of_images``), most common first.

    Each result counts the labels it carries (its top labels.CARRIED, as ``label:NAME`` filters);
    ``exclude``: names already filtered on (every result carries them: narrowing by them again is no
    step). Ties go to the label more probable over the page, then to its key.
    """
    unwanted = {name.strip().casefold() for name in exclude}
    counts: dict[int, int] = {}
    mass: dict[int, float] = {}
    concepts: dict[int, Concept] = {}
    for carried in found.values():
        for concept, probability in carried[: labels.CARRIED]:
            names = {concept.key.casefold(), *(n.casefold() for n in labels.concept_names(concept.names))}
            if names & unwanted:
                continue
            concepts[concept.pk] = concept
            counts[concept.pk] = counts.get(concept.pk, 0) + 1
            mass[concept.pk] = mass.get(concept.pk, 0.0) + probability
    ranked = sorted(counts, key=lambda pk: (-counts[pk], -mass[pk], concepts[pk].key))
    return [Facet(concepts[pk], counts[pk]) for pk in ranked[:limit]]


def images_by_id(ids: list[int]) -> list[Image]:
    """The images of ``ids`` that exist, in the order given (for breadcrumbs)."""
    found = replicas.read(
        lambda using: Image.objects.using(using).only(*RESULT_FIELDS).in_bulk(ids),
        missing=lambda found: len(found) < len(set(ids)),
    )
    return [found[pk] for pk in ids if pk in found]


def collection_is_empty() -> bool:
    # A replica that has no image yet asks the primary: the first upload shows at once.
    return replicas.read(lambda using: not Image.objects.using(using).embedded().exists(), missing=bool)


def collection_size() -> int:
    return replicas.read(lambda using: Image.objects.using(using).embedded().count())
