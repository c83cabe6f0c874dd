"""Switching encoders without downtime (gallery/switch.py, manage.py switch_encoder).

Two real pairs: the session's stand-ins (random weights: they understand nothing) are active, the
encoders trained on the generated world (tests/world.py TRAINED_SETTINGS) are next. A query for a
kind of object therefore finds it only once the switch is made, which proves which pair a search
uses: with the stand-ins the precision is about chance (1/12), with the trained pair near 1.
"""

import io
import shutil
import statistics

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from encoders import embeddings, world
from gallery import switch
from gallery.ingest import Ingestor
from gallery.models import EncoderPairs, Image
from gallery.services import image_create_from_upload
from search import selectors
from tests.factories import upload
from tests.world import TRAINED_SETTINGS

COUNT = 72  # 6 of each of the 12 kinds on average
K = 5


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """(folder, {relative path: labels}): a held-out world (seed 13) small enough to fill in seconds."""
    folder = tmp_path_factory.mktemp("switch-world")
    specs = world.make_world(folder, count=COUNT, seed=13)
    return folder, {spec.path: frozenset(spec.labels) for spec in specs}


@pytest.fixture
def collection(transactional_db, settings, small_world):
    """The small world ingested with the stand-ins (files in storage); the switch state cleaned up after."""
    folder, labels = small_world
    settings.NEXT_CLIP_IMAGE_MODEL = TRAINED_SETTINGS["CLIP_IMAGE_MODEL"]
    settings.NEXT_CLIP_TEXT_MODEL = TRAINED_SETTINGS["CLIP_TEXT_MODEL"]
    switch.clear_cache()
    report = Ingestor(batch_size=32).run([folder])
    assert report.counts["embedded"] == COUNT
    yield labels
    # No index left on embedding_next for the next test (the rows and EncoderPairs go with the flush;
    # a swap leaves the schema as the migrations made it, names included).
    switch.drop()
    switch.clear_cache()


def precision(labels, kind: str) -> float:
    page = selectors.image_search_by_text(query(kind), limit=K)
    paths = [image.path for image in page.results]
    assert len(paths) == K
    return sum(kind in labels.get(path, ()) for path in paths) / K


def query(kind: str) -> str:
    return world.phrase("en", np.random.default_rng([7, world.KINDS.index(kind)]), kind=kind)


def mean_precision(labels) -> float:
    return statistics.fmean(precision(labels, kind) for kind in world.KINDS)


def ranking(kind: str = "star") -> list[int]:
    return [image.pk for image in selectors.image_search_by_text(query(kind), limit=10).results]


def test_fill_switch_rollback_drop(collection, settings):
    labels = collection
    before = ranking()
    assert mean_precision(labels) < 0.4  # the stand-ins understand nothing

    # Fill, searching between batches: search keeps using the active pair, unchanged.
    seen = []
    report = switch.fill(batch_size=16, on_batch=lambda report: seen.append(ranking()))
    assert (report.filled, report.total, report.unreadable) == (COUNT, COUNT, [])
    assert len(seen) == 5 and all(ids == before for ids in seen)
    trained_id = embeddings.image_encoder_id(settings.NEXT_CLIP_IMAGE_MODEL)
    assert set(Image.objects.values_list("encoder_next", flat=True)) == {trained_id}
    assert set(Image.objects.values_list("encoder", flat=True)) == {embeddings.image_encoder_id()}

    # An upload during the switch gets both vectors.
    new = image_create_from_upload(file=upload(5, "new.png"))
    assert new.embedding is not None and new.embedding_next is not None and new.encoder_next == trained_id

    # Complete but not indexed: refused, nothing changed.
    with pytest.raises(CommandError, match="build-index"):
        call_command("switch_encoder", "switch")
    assert ranking() == before

    call_command("switch_encoder", "build-index", stdout=io.StringIO())
    assert switch.index_state() == "ready"
    out = io.StringIO()
    call_command("switch_encoder", "switch", stdout=out)
    assert "Searching with" in out.getvalue()

    # Every search now encodes with the trained text encoder and searches the trained vectors.
    assert mean_precision(labels) >= 0.8
    assert set(Image.objects.values_list("encoder", flat=True)) == {trained_id}
    assert Image.objects.get(pk=new.pk).encoder == trained_id
    with connection.cursor() as cursor:  # the model's index is on the (new) embedding column
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [switch.INDEX])
        assert "(embedding " in cursor.fetchone()[0]

    # Rollback: the stand-ins' vectors were kept; the ranking is the one from before.
    call_command("switch_encoder", "rollback", stdout=io.StringIO())
    assert ranking() == before

    call_command("switch_encoder", "switch", stdout=io.StringIO())
    call_command("switch_encoder", "drop", stdout=io.StringIO())
    assert not Image.objects.filter(embedding_next__isnull=False).exists()
    assert switch.index_state() == "absent"
    assert mean_precision(labels) >= 0.8  # still the trained pair
    with pytest.raises(CommandError, match="Nothing to roll back"):
        call_command("switch_encoder", "rollback")


def test_a_process_with_stale_pairs_never_mixes(collection, settings):
    """A process that still believes the old pair is active re-encodes once it sees the switch, under the lock."""
    labels = collection
    switch.fill()
    stale_before_fill = switch.Encoders(active=switch.Pair(settings.CLIP_IMAGE_MODEL, settings.CLIP_TEXT_MODEL))

    # A write by a process that has not seen the fill start yet: it gets the next vector anyway.
    switch._cache.value = stale_before_fill
    image = image_create_from_upload(file=upload(9, "late.png"))
    assert image.embedding_next is not None

    switch.build_index()
    switch.swap()
    # A search by a process that has not seen the switch: checked in its transaction, encoded again.
    switch._cache.value = stale_before_fill
    assert mean_precision(labels) >= 0.8


def test_interrupted_fill_resumes_and_switch_refuses_until_complete(collection, settings):
    first = switch.fill(batch_size=8, limit=20)
    assert first.filled == 20
    out = io.StringIO()
    call_command("switch_encoder", "status", stdout=out)
    assert f"Filled: 20 of {COUNT}" in out.getvalue()
    with pytest.raises(CommandError, match=f"{COUNT - 20} of {COUNT} embedded images have no vector"):
        call_command("switch_encoder", "switch")

    encoded = []
    original = embeddings.encode_images

    def counting(images, **kwargs):
        encoded.append(len(images))
        return original(images, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings, "encode_images", counting)
        second = switch.fill(batch_size=8)
    assert second.filled == COUNT and sum(encoded) == COUNT - 20  # only what the first run left


def test_fill_needs_the_next_pair(transactional_db, settings):
    settings.NEXT_CLIP_IMAGE_MODEL = settings.NEXT_CLIP_TEXT_MODEL = ""
    switch.clear_cache()
    with pytest.raises(CommandError, match="Set NEXT_CLIP_IMAGE_MODEL"):
        call_command("switch_encoder", "fill")
    settings.NEXT_CLIP_IMAGE_MODEL = settings.CLIP_IMAGE_MODEL
    settings.NEXT_CLIP_TEXT_MODEL = settings.CLIP_TEXT_MODEL
    with pytest.raises(CommandError, match="active pair already"):
        call_command("switch_encoder", "fill")
    with pytest.raises(CommandError, match="No switch is under way"):
        call_command("switch_encoder", "switch")
    assert not EncoderPairs.objects.exists()


def test_encoder_id_follows_the_content(settings, tmp_path, standin_encoders):
    """A retrained encoder in the same folder gets another id; a copy of the same folder keeps it."""
    import torch
    from sentence_transformers import SentenceTransformer

    clip, _ = standin_encoders
    folder, copy = tmp_path / "clip", tmp_path / "copy"
    shutil.copytree(clip, folder)
    shutil.copytree(clip, copy)
    before = embeddings.image_encoder_id(str(folder))
    assert before.startswith(f"{folder} #")
    assert before.split("#")[1] == embeddings.image_encoder_id(str(copy)).split("#")[1]

    model = SentenceTransformer(str(folder), device="cpu")  # "retrain": every weight moves a little
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 1e-3)
    model.save(str(folder))
    assert embeddings.image_encoder_id(str(folder)) == before  # computed once per process
    embeddings.clear_cache()
    after = embeddings.image_encoder_id(str(folder))
    assert after != before and after.startswith(f"{folder} #")
    assert embeddings.image_encoder_id("clip-ViT-B-32") == "clip-ViT-B-32"  # a hub name: its name


def test_vector_storage_converts_both_columns(collection, settings):
    switch.fill()
    switch.build_index()
    call_command("vector_storage", "vector", stdout=io.StringIO())
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'gallery_image'::regclass AND attname IN ('embedding', 'embedding_next')"
            )
            assert {t.split("(")[0] for _, t in cursor.fetchall()} == {"vector"}
        assert switch.index_state() == "ready"
        switch.swap()
        assert mean_precision(collection) >= 0.8
    finally:
        call_command("vector_storage", settings.VECTOR_STORAGE, stdout=io.StringIO())
