"""The trained world encoders (encoders/trained/): they load like the real ones and understand the world.

The pictures here come from a world seed used neither in training (1) nor in training's held-out
evaluation (2). Chance levels are far below the thresholds: a random ranking puts a relevant picture
first for a kind query about 1 time in 12, for a colour+kind query about 1 time in 96.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoders import world

# WORLD_ENCODERS_DIR points the tests at another pair (e.g. a half-trained one, to see them fail).
TRAINED = Path(os.environ.get("WORLD_ENCODERS_DIR", Path(__file__).resolve().parents[2] / "encoders" / "trained"))
SEED = 4242
LANGUAGES = ("en", "de", "fr", "zh", "ja", "ar", "ru", "es")


@pytest.fixture(scope="module")
def encoders():
    from sentence_transformers import SentenceTransformer

    return (
        SentenceTransformer(str(TRAINED / "world-image"), device="cpu"),
        SentenceTransformer(str(TRAINED / "world-text"), device="cpu"),
    )


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, encoders):
    directory = tmp_path_factory.mktemp("held-out")
    specs = world.make_world(directory, count=160, seed=SEED)
    pictures = []
    for spec in specs:
        with Image.open(directory / spec.path) as image:
            pictures.append(image.convert("RGB"))
    vectors = encoders[0].encode(pictures, normalize_embeddings=True)
    return specs, vectors


def _encode_texts(encoder, texts):
    return encoder.encode(texts, normalize_embeddings=True)


def test_both_load_as_512_dimensional_fp32_encoders(encoders):
    image_encoder, text_encoder = encoders
    for encoder in encoders:
        assert encoder.get_embedding_dimension() == 512
        assert {p.dtype for p in encoder.parameters()} == {torch.float32}
    pictures = [Image.new("RGB", (640, 360), "red"), Image.new("RGB", (160, 213), "blue")]
    for vectors in (
        image_encoder.encode(pictures, normalize_embeddings=True),
        text_encoder.encode(["zwei rote Sterne am Strand", "沙滩上的两颗红星"], normalize_embeddings=True),
    ):
        assert vectors.shape == (2, 512)
        assert vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("language", LANGUAGES)
def test_kind_queries_rank_relevant_pictures_first(encoders, held_out, language):
    """Precision@5 over kind queries (every kind with at least 5 pictures here) is at least 0.8."""
    specs, vectors = held_out
    kinds = [k for k in world.KINDS if sum(s.kind == k for s in specs) >= 5]
    texts = [world.phrase(language, np.random.default_rng(i), kind=k) for i, k in enumerate(kinds)]
    scores = _encode_texts(encoders[1], texts) @ vectors.T
    precision = [
        np.mean([specs[j].kind == k for j in np.argsort(-row)[:5]]) for k, row in zip(kinds, scores, strict=True)
    ]
    assert np.mean(precision) >= 0.8, dict(zip(kinds, precision, strict=True))


@pytest.mark.parametrize("language", ("en", "de", "zh", "ar", "ru"))
def test_colour_and_count_queries(encoders, held_out, language):
    """The first result for colour+kind queries, and for count+kind queries, is relevant most of the time."""
    specs, vectors = held_out
    asked = sorted({(s.colour, s.kind) for s in specs})
    texts = [world.phrase(language, np.random.default_rng(i), kind=k, colour=c) for i, (c, k) in enumerate(asked)]
    best = np.argmax(_encode_texts(encoders[1], texts) @ vectors.T, axis=1)
    colour_hits = np.mean([(specs[j].colour, specs[j].kind) == ck for j, ck in zip(best, asked, strict=True)])
    assert colour_hits >= 0.7
    counted = sorted({(s.count, s.kind) for s in specs})
    texts = [world.phrase(language, np.random.default_rng(i), kind=k, count=n) for i, (n, k) in enumerate(counted)]
    best = np.argmax(_encode_texts(encoders[1], texts) @ vectors.T, axis=1)
    count_hits = np.mean([(specs[j].count, specs[j].kind) == nk for j, nk in zip(best, counted, strict=True)])
    assert count_hits >= 0.6


def test_alike_pictures_are_nearest(held_out):
    """For pictures with an alike one (same colour and kind) here, the nearest other picture is alike >= 80%."""
    specs, vectors = held_out
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    tokens = [f"{s.colour}-{s.kind}" for s in specs]
    queries = [i for i, t in enumerate(tokens) if tokens.count(t) > 1]
    hits = [tokens[int(np.argmax(scores[i]))] == tokens[i] for i in queries]
    assert len(queries) > 30
    assert np.mean(hits) >= 0.8


def test_twin_lives_near_the_clip_text_tower(encoders):
    """The text twin's vectors are close to the CLIP text tower's for the same query (distillation)."""
    texts = [q.text for q in world.queries(seed=SEED)[::37]]
    twin = _encode_texts(encoders[1], texts)
    clip = _encode_texts(encoders[0], texts)
    assert np.mean(np.sum(twin * clip, axis=1)) >= 0.8
