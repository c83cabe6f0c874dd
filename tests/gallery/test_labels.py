"""Zero-shot labels (gallery/labels.py): the vocabulary, label_images, and what they find in the generated world."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from gallery import labels, vocabulary
from gallery.models import Concept, Image, ImageLabel, LabelledImage
from tests.world import TRAINED

# The goal; measured: bench/README.md, "Labels" (world seed 11, deterministic).
PRECISION_FLOOR = 0.85


def as_array(vector) -> np.ndarray:
    return np.asarray(vector.to_list() if hasattr(vector, "to_list") else vector, dtype=np.float32)


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, "--no-progress", stdout=out) if args[0] == "label_images" else call_command(*args, stdout=out)
    return out.getvalue()


def test_the_default_vocabulary_is_large_and_without_repeats():
    concepts = vocabulary.read_default()
    assert len(concepts) >= 500
    keys = [key for key, _ in concepts]
    assert len(set(keys)) == len(keys) and all(keys)
    names = [name for _, n in concepts for name in n["en"]]
    assert len(set(names)) == len(names)
    for expected in ("dog", "beach", "sunset", "snow", "night", "kitchen", "mountain", "car"):
        assert expected in keys


@pytest.mark.django_db
def test_load_vocabulary_is_idempotent_and_keeps_the_admins_concepts():
    Concept.objects.create(key="my-cat", names={"en": ["Tom the cat"]})
    assert "created, 0 updated" in run("load_vocabulary")
    count = Concept.objects.count()
    assert count == len(vocabulary.read_default()) + 1
    assert run("load_vocabulary") == "0 concepts created, 0 updated.\n"
    run("load_vocabulary", "--world")
    assert Concept.objects.get(key="world-background-sky").names == {"en": ["in the sky", "against the sky"]}
    assert Concept.objects.get(key="world-fish").names == {"en": ["fish"]}
    assert Concept.objects.filter(source="world").count() == len(vocabulary.world_concepts())
    assert Concept.objects.get(key="my-cat").names == {"en": ["Tom the cat"]}


def test_world_tokens():
    assert vocabulary.world_token("world-background-sky") == "background:sky"
    assert vocabulary.world_token("world-red") == "red"
    assert vocabulary.world_token("dog") is None


@pytest.mark.django_db
def test_label_images_without_a_vocabulary_says_what_to_do():
    with pytest.raises(CommandError, match="load_vocabulary"):
        run("label_images")


def world_precision_recall(collection: dict[int, frozenset[str]], k: int = 3) -> tuple[float, float]:
    """Mean precision@k and recall@k of the stored labels against the world's truth (its vocabulary's tokens)."""
    tokens = {vocabulary.world_token(key) for key, _ in vocabulary.world_concepts()}
    precision, recall = [], []
    for image_id, truth_labels in collection.items():
        truth = truth_labels & tokens
        top = [vocabulary.world_token(c.key) for c, _ in labels.image_labels(image_id)[:k]]
        hits = len(set(top) & truth)
        precision.append(hits / k)
        recall.append(hits / len(truth))
    return float(np.mean(precision)), float(np.mean(recall))


def test_world_labels_reach_the_goal(world_collection):
    run("load_vocabulary", "--world")
    out = run("label_images")
    assert f"{len(world_collection)} images to label" in out
    precision, recall = world_precision_recall(world_collection)
    assert precision >= PRECISION_FLOOR and recall >= PRECISION_FLOOR, (precision, recall)


def test_probabilities_are_clips_softmax_of_the_stored_vector(world_collection):
    run("load_vocabulary", "--world")
    run("label_images", "--chunk-size", "50")
    vocab = labels.vocabulary()
    # The trained image encoder's own learned scale, not the fallback.
    assert vocab.scale != labels.DEFAULT_LOGIT_SCALE and 1 < vocab.scale <= 100
    image = Image.objects.get(pk=next(iter(world_collection)))
    vector = as_array(image.embedding)
    concepts = list(Concept.objects.exclude(vector=None).order_by("id"))
    matrix = np.stack([as_array(c.vector) for c in concepts])
    logits = vocab.scale * (matrix @ vector) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector))
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    stored = {c.key: p for c, p in labels.image_labels(image.pk)}
    assert stored, "no label kept"
    assert list(stored.values()) == sorted(stored.values(), reverse=True)
    by_key = dict(zip([c.key for c in concepts], expected, strict=True))
    for key, probability in stored.items():
        assert probability == pytest.approx(by_key[key], abs=1e-4)
        assert probability >= labels.MIN_PROBABILITY
    kept = [key for key, p in by_key.items() if p >= labels.MIN_PROBABILITY]
    assert set(stored) == set(sorted(kept, key=by_key.get, reverse=True)[: labels.MAX_LABELS])


def test_labelling_is_incremental_and_follows_the_vocabulary(world_collection):
    run("load_vocabulary", "--world")
    first_ids = list(world_collection)[:100]
    # An interrupted run: only some images labelled (a chunk is committed on its own).
    vocab = labels.vocabulary()
    done, _ = labels.label_chunk(vocab, 0, 100)
    assert done == 100
    assert set(LabelledImage.objects.values_list("image_id", flat=True)) == set(first_ids)
    assert f"{len(world_collection) - 100} images to label" in run("label_images")
    assert "0 images to label" in run("label_images")
    before = ImageLabel.objects.count()

    # A concept's names change: it is embedded again and every image labelled again.
    concept = Concept.objects.get(key="world-red")
    concept.names = {"en": ["red"], "de": ["rot"]}
    concept.save()
    assert f"{len(world_collection)} images to label" in run("label_images")
    assert ImageLabel.objects.count() == pytest.approx(before, rel=0.1)
    # No image keeps labels of two versions.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT version) FROM gallery_labelledimage")
        assert cursor.fetchone()[0] == 1

    # An image that is deleted takes its labels with it.
    Image.objects.filter(pk=first_ids[0]).delete()
    assert not ImageLabel.objects.filter(image_id=first_ids[0]).exists()


def test_the_api_returns_an_images_labels(world_collection, client, settings):
    run("load_vocabulary", "--world")
    run("label_images")
    image_id = next(iter(world_collection))
    response = client.get(f"/api/images/{image_id}/labels")
    assert response.status_code == 200
    found = response.json()["labels"]
    assert found and found == sorted(found, key=lambda label: -label["probability"])
    assert {"key", "name", "probability"} == set(found[0])
    assert found[0]["key"] in {key for key, _ in vocabulary.world_concepts()}

    # Each search result carries its labels too, the same as the image's own answer.
    results = client.get("/api/search", {"q": "a red circle", "limit": 5}).json()["results"]
    assert results and all(result["labels"] for result in results)
    for result in results:
        assert result["labels"] == client.get(f"/api/images/{result['id']}/labels").json()["labels"]

    assert client.get("/api/images/999999999/labels").status_code == 404
    settings.SEARCH_REQUIRES_LOGIN = True
    assert client.get(f"/api/images/{image_id}/labels").status_code == 401


def test_the_trained_folder_is_there():
    assert (TRAINED / "world-image").is_dir()


@pytest.mark.django_db
def test_the_admin_edits_a_concepts_names_and_refuses_bad_ones(admin_client):
    from django.urls import reverse

    concept = Concept.objects.create(key="dog", names={"en": ["dog"]}, vector_key="old")
    url = reverse("admin:gallery_concept_change", args=[concept.pk])
    assert admin_client.get(reverse("admin:gallery_concept_changelist") + "?q=dog").status_code == 200
    response = admin_client.post(url, {"key": "dog", "names": '{"en": ["dog"], "de": ["Hund"]}', "source": "admin"})
    assert response.status_code == 302
    concept.refresh_from_db()
    assert concept.names == {"en": ["dog"], "de": ["Hund"]} and concept.vector_key == ""  # embedded again later
    for bad in ('["dog"]', '{"en": "dog"}', '{"en": []}'):
        response = admin_client.post(url, {"key": "dog", "names": bad, "source": "admin"})
        assert response.status_code == 200 and b"errornote" in response.content, bad
    concept.refresh_from_db()
    assert concept.names == {"en": ["dog"], "de": ["Hund"]}


@pytest.mark.django_db
def test_new_images_are_labelled_as_they_are_embedded(django_capture_on_commit_callbacks, settings):
    from gallery.services import image_create_from_upload
    from tests.factories import upload

    # Without a vocabulary nothing happens, and the upload is as before.
    with django_capture_on_commit_callbacks(execute=True):
        plain = image_create_from_upload(file=upload(1, "one.jpg"))
    assert plain.state == Image.State.EMBEDDED and not ImageLabel.objects.exists()

    vocabulary.load(vocabulary.read_default()[:50], source="default")
    with django_capture_on_commit_callbacks(execute=True):
        image = image_create_from_upload(file=upload(2, "two.jpg"))
    found = labels.image_labels(image.pk)
    assert found and sum(p for _, p in found) <= 1.0 + 1e-6
    assert LabelledImage.objects.get(image=image).version == labels.vocabulary().version
    # The first image, embedded before the vocabulary existed, is stale: label_images takes only it.
    assert "1 images to label" in run("label_images")

    # Labelling that fails (the text encoder gone, a concept to embed) loses no upload.
    Concept.objects.create(key="new-one", names={"en": ["a new one"]})
    settings.CLIP_TEXT_MODEL = "/nonexistent/text-encoder"
    with django_capture_on_commit_callbacks(execute=True):
        third = image_create_from_upload(file=upload(3, "three.jpg"))
    assert third.state == Image.State.EMBEDDED and not ImageLabel.objects.filter(image=third).exists()


def test_label_filter_in_the_search_box_keeps_the_images_carrying_it(world_collection):
    from search import query, selectors

    run("load_vocabulary", "--world")
    run("label_images")
    carried = {
        image_id
        for image_id in world_collection
        if "star" in [vocabulary.world_token(c.key) for c, _ in labels.image_labels(image_id)[: labels.CARRIED]]
    }
    assert 5 < len(carried) < len(world_collection) / 3

    # label:star with a description: only images carrying "star", ranked by the description.
    page, notes = selectors.image_search_by_query(query.parse("something red label:star"), limit=200)
    assert notes == []
    found = {image.pk for image in page.results}
    assert found == carried
    # The filter narrows a search that would otherwise return others.
    plain, _ = selectors.image_search_by_query(query.parse("something red"), limit=200)
    assert {image.pk for image in plain.results} - carried

    # label:star alone: the same images, the ones whose truth says star among the first.
    alone, notes = selectors.image_search_by_query(query.parse("label:STAR"), limit=10)
    assert notes == [] and {image.pk for image in alone.results} <= carried
    assert sum("star" in world_collection[image.pk] for image in alone.results) >= 9

    # An unknown label is left out, saying so.
    page, notes = selectors.image_search_by_query(query.parse("a red boat label:unicorn"), limit=5)
    assert page is not None and len(page.results) == 5
    assert notes == ["label:unicorn: there is no such label in the vocabulary (the admin's Concepts); left out."]
