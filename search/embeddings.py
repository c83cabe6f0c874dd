"""The one home of the models: CLIP for images, its multilingual text twin for queries.

Models are loaded lazily, once per process, from the CLIP_IMAGE_MODEL and CLIP_TEXT_MODEL
settings (a hub name or a local path). Nothing here imports torch until a model is needed, so
``manage.py check`` and ``migrate`` stay light.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image as PILImage
    from sentence_transformers import SentenceTransformer

IMAGE_SETTING = "CLIP_IMAGE_MODEL"
TEXT_SETTING = "CLIP_TEXT_MODEL"

_models: dict[tuple[str, str], SentenceTransformer] = {}
_lock = threading.Lock()


class ModelUnavailable(RuntimeError):
    """A model named by a setting cannot be loaded (no network, wrong path, wrong dimension)."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(message)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.path.exists(name)


def _load(setting: str) -> SentenceTransformer:
    name = getattr(settings, setting)
    key = (setting, name)
    model = _models.get(key)
    if model is not None:
        return model
    with _lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = _load_uncached(setting, name)
    return model


def _load_uncached(setting: str, name: str) -> SentenceTransformer:
    offline_help = (
        f"Set {setting} to a local folder holding the model: on a machine with internet, run "
        f"`python -c \"from sentence_transformers import SentenceTransformer as S; S('{name}').save('/models/x')\"` "
        f"and copy /models/x here, or pre-fill the Hugging Face cache (HF_HOME). "
        f"For a site that runs but does not understand images, `python manage.py make_standin_models var/models` "
        f"builds offline stand-ins."
    )
    if not name:
        raise ModelUnavailable(setting, f"{setting} is empty. {offline_help}")
    if _looks_like_path(name) and not os.path.isdir(os.path.expanduser(name)):
        raise ModelUnavailable(
            setting,
            f"{setting}={name!r}: no such folder. Set {setting} to a folder holding a SentenceTransformer model "
            f"(or a hub name, downloaded on first use where there is internet); "
            f"`python manage.py make_standin_models var/models` builds offline stand-ins.",
        )
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(os.path.expanduser(name), device=settings.EMBEDDING_DEVICE)
    except Exception as exc:  # network errors, missing files, bad configs: all mean "cannot load"
        raise ModelUnavailable(
            setting,
            f"Could not load the model {name!r} set by {setting}: {exc.__class__.__name__}: {exc}. {offline_help}",
        ) from exc
    model.eval()
    dimensions = model.get_embedding_dimension()
    if dimensions != settings.EMBEDDING_DIMENSIONS:
        raise ModelUnavailable(
            setting,
            f"The model {name!r} set by {setting} makes {dimensions}-dimensional vectors, but "
            f"EMBEDDING_DIMENSIONS is {settings.EMBEDDING_DIMENSIONS}. Image and text models must share "
            f"one vector space of EMBEDDING_DIMENSIONS dimensions.",
        )
    return model


def image_model_id() -> str:
    """What is stored beside each vector, so a model switch can be detected."""
    return settings.CLIP_IMAGE_MODEL


def get_image_model() -> SentenceTransformer:
    return _load(IMAGE_SETTING)


def get_text_model() -> SentenceTransformer:
    return _load(TEXT_SETTING)


def _encode(model: SentenceTransformer, inputs: Sequence, batch_size: int | None) -> np.ndarray:
    import torch

    if not inputs:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    with torch.inference_mode():
        vectors = model.encode(
            list(inputs),
            batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def encode_images(images: Sequence[PILImage], *, batch_size: int | None = None) -> np.ndarray:
    """L2-normalised float32 vectors, one row per PIL image (converted to RGB)."""
    rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    return _encode(get_image_model(), rgb, batch_size)


def encode_texts(texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
    """L2-normalised float32 vectors, one row per string."""
    return _encode(get_text_model(), list(texts), batch_size)


def encode_text(text: str) -> np.ndarray:
    return encode_texts([text])[0]


def clear_cache() -> None:
    """Forget loaded models (tests switch settings between them)."""
    with _lock:
        _models.clear()
