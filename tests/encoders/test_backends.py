"""EMBEDDING_BACKEND: torch, ONNX Runtime fp32 and int8, on the tiny stand-ins exported for real."""

import io
import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from django.core.management import call_command

from encoders import embeddings, onnx_backend
from encoders.standins import build_clip
from tests.conftest import ROOT
from tests.factories import photo, write_photos

BACKENDS = ["torch", "onnx", "onnx-int8"]
TEXTS = [
    "a cat on a sofa",
    "eine Katze auf dem Sofa",
    "沙发上的猫",
    "قطة على الأريكة",
    "a red car parked on the street at night, under the rain, near a market",
    "雪山",
]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One export cache for the tests that only read it (an export of a tiny stand-in takes about a second)."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture
def backend(settings, shared_cache):
    """Switch EMBEDDING_BACKEND for one test (the settings fixture restores it)."""
    settings.ONNX_CACHE_DIR = str(shared_cache)

    def use(name: str) -> None:
        settings.EMBEDDING_BACKEND = name

    embeddings.clear_cache()
    yield use
    embeddings.clear_cache()


@pytest.fixture
def export_count(monkeypatch):
    """How many exports ran (each one writes a new ONNX model)."""
    calls = []
    original = onnx_backend._write_export

    def counting(**kwargs):
        calls.append(kwargs["backend"])
        return original(**kwargs)

    monkeypatch.setattr(onnx_backend, "_write_export", counting)
    return calls


def images() -> list:
    return [photo(seed) for seed in range(10)] + [photo(10, mode="L"), photo(11, mode="RGBA")]


def encode_all(use, name: str) -> tuple[np.ndarray, np.ndarray]:
    use(name)
    return embeddings.encode_images(images()), embeddings.encode_texts(TEXTS)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.mark.parametrize("name", BACKENDS)
def test_each_backend_makes_unit_512_float32_vectors(backend, name):
    image_vectors, text_vectors = encode_all(backend, name)
    for vectors, rows in ((image_vectors, 12), (text_vectors, len(TEXTS))):
        assert vectors.shape == (rows, 512)
        assert vectors.dtype == np.float32
        assert vectors.flags.c_contiguous
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embeddings.encode_texts([]).shape == (0, 512)


def test_onnx_fp32_matches_torch(backend):
    torch_images, torch_texts = encode_all(backend, "torch")
    onnx_images, onnx_texts = encode_all(backend, "onnx")
    assert type(embeddings.get_image_encoder()).__name__ == "OnnxEncoder"
    assert row_cosines(onnx_images, torch_images).min() >= 0.999
    assert row_cosines(onnx_texts, torch_texts).min() >= 0.999
    # Different inputs still give different vectors (the export is not a constant).
    assert float(onnx_images[0] @ onnx_images[1]) < 0.999


def test_int8_is_close_to_torch(backend):
    """Random tiny weights quantise well (about 0.99); the bound only catches a broken quantisation."""
    torch_images, torch_texts = encode_all(backend, "torch")
    int8_images, int8_texts = encode_all(backend, "onnx-int8")
    for cosines in (row_cosines(int8_images, torch_images), row_cosines(int8_texts, torch_texts)):
        assert cosines.min() >= 0.95
        assert cosines.mean() >= 0.98


@pytest.mark.parametrize(("name", "bound"), [("onnx", 0.9999), ("onnx-int8", 0.95)])
def test_batching_keeps_rows_in_order(backend, name, bound):
    """Texts are sorted by length into batches and put back; images are cut into batches.

    int8 rows depend a little on their batch: dynamic quantisation scales activations per batch.
    """
    backend(name)
    one_by_one = np.stack([embeddings.encode_text(text) for text in TEXTS])
    batched = embeddings.encode_texts(TEXTS, batch_size=4)
    assert row_cosines(batched, one_by_one).min() >= bound
    assert list(np.argmax(batched @ one_by_one.T, axis=1)) == list(range(len(TEXTS)))
    pictures = images()
    in_fives, whole = embeddings.encode_images(pictures, batch_size=5), embeddings.encode_images(pictures)
    assert row_cosines(in_fives, whole).min() >= bound
    assert list(np.argmax(in_fives @ whole.T, axis=1)) == list(range(len(pictures)))


def test_unknown_backend_names_the_setting(backend):
    backend("tensorrt")
    with pytest.raises(embeddings.EncoderUnavailable) as excinfo:
        embeddings.encode_texts(["hello"])
    assert excinfo.value.setting == "EMBEDDING_BACKEND"
    message = str(excinfo.value)
    assert "EMBEDDING_BACKEND='tensorrt'" in message and "torch, onnx, onnx-int8" in message


def test_a_failed_export_names_the_setting_and_leaves_nothing_behind(backend, settings, tmp_path, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the exporter fell over")

    monkeypatch.setattr(onnx_backend, "_write_export", broken)
    settings.ONNX_CACHE_DIR = str(tmp_path / "cache")
    backend("onnx")
    with pytest.raises(embeddings.EncoderUnavailable) as excinfo:
        embeddings.encode_images([photo(1)])
    assert excinfo.value.setting == "EMBEDDING_BACKEND"
    message = str(excinfo.value)
    assert (
        "CLIP_IMAGE_MODEL" in message and "the exporter fell over" in message and "EMBEDDING_BACKEND=torch" in message
    )
    assert [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_image_encoder_id_marks_int8_only(backend, settings):
    name = f"{settings.CLIP_IMAGE_MODEL} #{embeddings.fingerprint(settings.CLIP_IMAGE_MODEL)}"
    for backend_name, expected in (("torch", name), ("onnx", name), ("onnx-int8", f"{name} (onnx-int8)")):
        backend(backend_name)
        assert embeddings.image_encoder_id() == expected


def test_export_is_cached_and_reused(backend, settings, tmp_path, export_count):
    settings.ONNX_CACHE_DIR = str(tmp_path / "cache")
    backend("onnx-int8")
    first = embeddings.encode_images([photo(1)])
    folder = embeddings.get_image_encoder().folder
    model_file = folder / onnx_backend.MODEL_FILE
    written = model_file.stat().st_mtime_ns
    assert export_count == ["onnx-int8"]
    assert json.loads((folder / onnx_backend.META_FILE).read_text())["probe_cosine_min"] >= 0.9

    embeddings.clear_cache()  # a new process, as far as the models are concerned
    again = embeddings.encode_images([photo(1)])
    assert export_count == ["onnx-int8"]
    assert embeddings.get_image_encoder().folder == folder
    assert model_file.stat().st_mtime_ns == written
    np.testing.assert_array_equal(again, first)


def test_changed_source_model_is_exported_again(backend, settings, standin_encoders, tmp_path, export_count):
    copy = tmp_path / "clip"
    shutil.copytree(standin_encoders[0], copy)
    settings.CLIP_IMAGE_MODEL = str(copy)
    settings.ONNX_CACHE_DIR = str(tmp_path / "cache")
    backend("onnx")
    before = embeddings.encode_images([photo(1)])
    old_folder = embeddings.get_image_encoder().folder

    build_clip(copy, seed=1)  # new weights in the same folder
    embeddings.clear_cache()
    after = embeddings.encode_images([photo(1)])
    new_folder = embeddings.get_image_encoder().folder
    assert export_count == ["onnx", "onnx"]
    assert new_folder != old_folder and not old_folder.exists()  # the stale export is pruned
    assert float(after[0] @ before[0]) < 0.99  # the new model's vectors, not the cached old ones

    backend("torch")
    assert row_cosines(after, embeddings.encode_images([photo(1)])).min() >= 0.999


def test_a_touched_file_counts_as_a_change(standin_encoders, tmp_path):
    copy = tmp_path / "text"
    shutil.copytree(standin_encoders[1], copy)
    before = onnx_backend.fingerprint(folder=copy)
    assert onnx_backend.fingerprint(folder=copy) == before
    config = copy / "config.json"
    config.write_text(config.read_text())  # same bytes, rewritten
    assert onnx_backend.fingerprint(folder=copy) != before


def test_concurrent_loads_export_once(settings, standin_encoders, tmp_path, export_count):
    """The file lock: a second loader waits for the first export instead of doing its own."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(standin_encoders[1]), device="cpu")
    results, errors = [], []

    def load():
        try:
            results.append(
                onnx_backend.load(
                    name=str(standin_encoders[1]),
                    modality="text",
                    backend="onnx",
                    cache_dir=tmp_path / "cache",
                    torch_model=lambda: model,
                )
            )
        except Exception as exc:  # reported below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert export_count == ["onnx"]
    assert results[0].folder == results[1].folder
    assert not list((tmp_path / "cache").glob(".*.tmp"))


def test_publishing_keeps_the_first_complete_export(tmp_path):
    """The race without the lock: two processes finish the same export; the second rename must not break the first."""
    target = tmp_path / "model-onnx-0123"
    winner, loser = tmp_path / ".winner.tmp", tmp_path / ".loser.tmp"
    for work in (winner, loser):
        work.mkdir()
        (work / onnx_backend.META_FILE).write_text(json.dumps({"by": work.name}))
        (work / onnx_backend.MODEL_FILE).write_bytes(b"onnx")
    onnx_backend.publish(work=winner, target=target)
    onnx_backend.publish(work=loser, target=target)
    assert json.loads((target / onnx_backend.META_FILE).read_text()) == {"by": ".winner.tmp"}

    incomplete = tmp_path / "other-onnx-0123"
    incomplete.mkdir()
    (incomplete / onnx_backend.MODEL_FILE).write_bytes(b"half")  # no meta.json: never finished
    onnx_backend.publish(work=loser, target=incomplete)
    assert json.loads((incomplete / onnx_backend.META_FILE).read_text()) == {"by": ".loser.tmp"}


def test_warm_cache_with_another_dimension_names_the_model_setting(backend, settings):
    backend("onnx")
    embeddings.encode_texts(["warm the cache"])
    embeddings.clear_cache()
    settings.EMBEDDING_DIMENSIONS = 64
    with pytest.raises(embeddings.EncoderUnavailable) as excinfo:
        embeddings.encode_texts(["hello"])
    assert excinfo.value.setting == "CLIP_TEXT_MODEL"
    assert "512-dimensional" in str(excinfo.value) and "EMBEDDING_DIMENSIONS is 64" in str(excinfo.value)


def test_hub_names_are_found_in_the_local_cache(standin_encoders, tmp_path, monkeypatch):
    """A hub name (the default settings) is exported from its downloaded snapshot, never fetched again."""
    hub = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub / "models--sentence-transformers--tiny-clip"
    shutil.copytree(standin_encoders[0], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(hub))
    assert onnx_backend.source_folder(name="tiny-clip") == repo / "snapshots" / commit
    assert onnx_backend.source_folder(name="sentence-transformers/tiny-clip") == repo / "snapshots" / commit
    assert onnx_backend.source_folder(name="not-downloaded") is None


@pytest.mark.django_db(transaction=True)  # embed_images decodes in worker threads
def test_embed_images_with_int8_records_the_backend(backend, tmp_path):
    from gallery.models import Image

    backend("onnx-int8")
    write_photos(tmp_path / "lib", 3)
    call_command("embed_images", str(tmp_path / "lib"), verbosity=0, stdout=io.StringIO())
    assert Image.objects.filter(state="embedded").count() == 3
    assert set(Image.objects.values_list("encoder", flat=True)) == {embeddings.image_encoder_id()}
    assert embeddings.image_encoder_id().endswith(" (onnx-int8)")


def test_check_with_an_onnx_backend_imports_neither_torch_nor_onnxruntime():
    code = (
        "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings');"
        "os.environ['EMBEDDING_BACKEND'] = 'onnx-int8'; django.setup();"
        "from django.core.management import call_command; call_command('check');"
        "import encoders.embeddings, encoders.onnx_backend, gallery.ingest;"
        "heavy = {'torch', 'onnxruntime', 'onnx', 'sentence_transformers'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
