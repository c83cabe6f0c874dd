"""Ranking metrics, pure numpy: average precision at k, mAP@k, recall@k, top-k overlap.

Definition (mAP@k as in the Towhee + Milvus image-search evaluation, also GLDv2's)::

    AP@k = 1 / min(k, R) * sum_{i=1..k} P(i) * rel(i)

where rel(i) is 1 when the i-th result is relevant, P(i) the precision of the first i results and
R the number of relevant items in the whole collection. Dividing by min(k, R) makes a perfect
ranking score 1 even when a query has more than k relevant items. mAP@k is the mean over queries;
queries with no relevant item (R = 0) are undefined and must be left out by the caller.

What is relevant is the world's business (encoders/world.py): a picture is relevant to a text
query when it carries all the query's label tokens; to an image query when it shares kind and
colour (and is not the query picture itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def average_precision_at_k(ranked_relevance: Sequence[bool], k: int, total_relevant: int) -> float:
    """AP@k of one ranking: ``ranked_relevance[i]`` says whether the (i+1)-th result is relevant.

    ``total_relevant`` counts the relevant items in the collection (not only in the ranking).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if total_relevant < 1:
        raise ValueError("average precision is undefined for a query with no relevant item")
    rel = np.asarray(ranked_relevance[:k], dtype=bool)
    if not rel.any():
        return 0.0
    hits = np.cumsum(rel)
    precision = hits / np.arange(1, len(rel) + 1)
    return float((precision * rel).sum() / min(k, total_relevant))


def mean_average_precision_at_k(rankings: Sequence[Sequence[bool]], k: int, totals_relevant: Sequence[int]) -> float:
    """mAP@k: the mean of ``average_precision_at_k`` over queries (one ranking and one total per query)."""
    if len(rankings) != len(totals_relevant):
        raise ValueError("one total_relevant per ranking")
    if not rankings:
        raise ValueError("no queries")
    return float(np.mean([average_precision_at_k(r, k, t) for r, t in zip(rankings, totals_relevant, strict=True)]))


def recall_at_k(ranked_relevance: Sequence[bool], k: int, total_relevant: int) -> float:
    """Share of the relevant items found in the first k results, capped at min(k, R) so 1 is reachable."""
    if total_relevant < 1:
        raise ValueError("recall is undefined for a query with no relevant item")
    return float(np.sum(np.asarray(ranked_relevance[:k], dtype=bool)) / min(k, total_relevant))


def hit_at_k(ranked_relevance: Sequence[bool], k: int) -> float:
    """1.0 when at least one of the first k results is relevant (recall@k in the CLIP papers' sense)."""
    return float(np.any(np.asarray(ranked_relevance[:k], dtype=bool)))


def top_k_overlap(a: Sequence, b: Sequence, k: int) -> float:
    """|top-k(a) & top-k(b)| / k: how much two rankings of the same collection agree (e.g. exact vs ANN)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    return len(set(list(a)[:k]) & set(list(b)[:k])) / k


def rank(query_vectors: np.ndarray, collection: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """Indices of the k most cosine-similar collection rows per query row (vectors already unit length).

    ``exclude_self`` drops row i from query i's results (image-to-image search within one collection).
    """
    scores = np.asarray(query_vectors, np.float32) @ np.asarray(collection, np.float32).T
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)
