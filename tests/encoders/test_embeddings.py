import numpy as np
import pytest
from django.conf import settings

from encoders import embeddings
from encoders.standins import build_clip
from tests.factories import photo


def test_standins_encode_texts_into_unit_512_vectors():
    vectors = embeddings.encode_texts(["a cat on a sofa", "eine Katze auf dem Sofa", "沙发上的猫", "قطة على الأريكة"])
    assert vectors.shape == (4, 512)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_standins_encode_images_into_unit_512_vectors():
    images = [photo(1), photo(2, mode="L"), photo(3, mode="RGBA")]
    vectors = embeddings.encode_images(images)
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # Deterministic: the same image gives the same vector (up to batching's float noise).
    assert float(embeddings.encode_images([photo(1)])[0] @ vectors[0]) > 0.999
    assert float(vectors[0] @ vectors[1]) < 0.999


def test_encoding_nothing_gives_an_empty_matrix():
    assert embeddings.encode_texts([]).shape == (0, 512)


@pytest.fixture
def fresh_models():
    embeddings.clear_cache()
    yield
    embeddings.clear_cache()


def test_model_of_the_wrong_dimension_is_refused(tmp_path, settings, fresh_models):
    wrong = build_clip(tmp_path / "clip64", dimensions=64)
    settings.CLIP_IMAGE_MODEL = str(wrong)
    with pytest.raises(embeddings.EncoderUnavailable) as excinfo:
        embeddings.encode_images([photo(1)])
    message = str(excinfo.value)
    assert "CLIP_IMAGE_MODEL" in message and "64-dimensional" in message and "EMBEDDING_DIMENSIONS is 512" in message
    assert excinfo.value.setting == "CLIP_IMAGE_MODEL"


def test_missing_model_path_names_the_setting_and_the_offline_way(tmp_path, settings, fresh_models):
    settings.CLIP_TEXT_MODEL = str(tmp_path / "no-such-model")
    with pytest.raises(embeddings.EncoderUnavailable) as excinfo:
        embeddings.encode_texts(["hello"])
    message = str(excinfo.value)
    assert "CLIP_TEXT_MODEL" in message
    assert "no such folder" in message
    assert "make_standin_encoders" in message


def test_folder_that_is_not_a_model_names_the_setting(tmp_path, settings, fresh_models):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    settings.CLIP_IMAGE_MODEL = str(tmp_path / "junk")
    with pytest.raises(embeddings.EncoderUnavailable, match="CLIP_IMAGE_MODEL"):
        embeddings.encode_images([photo(1)])


def test_models_are_loaded_once_per_process():
    first = embeddings.get_text_encoder()
    assert embeddings.get_text_encoder() is first
    assert settings.CLIP_TEXT_MODEL  # the stand-in path set by the session fixture
