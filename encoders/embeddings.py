"""The one home of the encoders: CLIP for images, its multilingual text twin for queries.

Encoders are loaded lazily, once per process, from the CLIP_IMAGE_MODEL and CLIP_TEXT_MODEL
settings (a hub name or a local path), and run by the EMBEDDING_BACKEND: torch, or ONNX Runtime
fp32 or int8 (encoders/onnx_backend.py). Nothing here imports torch until an encoder is needed, so
``manage.py check`` and ``migrate`` stay light.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image as PILImage
    from sentence_transformers import SentenceTransformer

    from .onnx_backend import OnnxEncoder

IMAGE_SETTING = "CLIP_IMAGE_MODEL"
TEXT_SETTING = "CLIP_TEXT_MODEL"
BACKEND_SETTING = "EMBEDDING_BACKEND"
# The one list of inference backends (checked by encoders/checks.py at `manage.py check`).
BACKENDS = ("torch", "onnx", "onnx-int8")

# Keyed by (setting, encoder name, backend): switching a setting never reuses the wrong encoder.
_encoders: dict[tuple[str, str, str], SentenceTransformer | OnnxEncoder] = {}
_lock = threading.Lock()


class EncoderUnavailable(RuntimeError):
    """An encoder named by a setting cannot be loaded (no network, wrong path, wrong dimension)."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(message)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.path.exists(name)


def _backend() -> str:
    backend = settings.EMBEDDING_BACKEND
    if backend not in BACKENDS:  # encoders.E001 at `manage.py check`; this for a process that skipped it
        raise EncoderUnavailable(
            BACKEND_SETTING,
            f"{BACKEND_SETTING}={backend!r} is not an inference backend: set it to one of {', '.join(BACKENDS)}.",
        )
    return backend


def _load(setting: str, name: str) -> SentenceTransformer | OnnxEncoder:
    backend = _backend()
    key = (setting, name, backend)
    encoder = _encoders.get(key)
    if encoder is not None:
        return encoder
    with _lock:
        encoder = _encoders.get(key)
        if encoder is None:
            encoder = _load_uncached(setting, name) if backend == "torch" else _load_onnx(setting, name, backend)
            _encoders[key] = encoder
    return encoder


def _load_onnx(setting: str, name: str, backend: str) -> OnnxEncoder:
    """The encoder exported for ONNX Runtime (on first use, then cached on disk under ONNX_CACHE_DIR)."""
    _check_name(setting, name)

    def torch_model() -> SentenceTransformer:
        # Only an export needs the torch encoder; reuse it when this process has it loaded already.
        loaded = _encoders.get((setting, name, "torch"))
        return loaded if loaded is not None else _load_uncached(setting, name)

    try:
        from . import onnx_backend

        encoder = onnx_backend.load(
            name=os.path.expanduser(name),
            modality="image" if setting == IMAGE_SETTING else "text",
            backend=backend,
            cache_dir=Path(settings.ONNX_CACHE_DIR),
            torch_model=torch_model,
        )
    except EncoderUnavailable:
        raise
    except Exception as exc:  # a missing package, a failed or unfaithful export, an unreadable cache
        raise EncoderUnavailable(
            BACKEND_SETTING,
            f"The encoder {name!r} set by {setting} cannot run with {BACKEND_SETTING}={backend}: "
            f"{exc.__class__.__name__}: {exc}. Set {BACKEND_SETTING}=torch to use the encoder as it is.",
        ) from exc
    _check_dimensions(setting, name, encoder.get_embedding_dimension())
    return encoder


def _check_name(setting: str, name: str) -> None:
    if not name:
        raise EncoderUnavailable(setting, f"{setting} is empty. {_offline_help(setting, name)}")
    if _looks_like_path(name) and not os.path.isdir(os.path.expanduser(name)):
        raise EncoderUnavailable(
            setting,
            f"{setting}={name!r}: no such folder. Set {setting} to a folder holding a SentenceTransformer encoder "
            f"(or a hub name, downloaded on first use where there is internet); "
            f"`python manage.py make_standin_encoders var/models` builds offline stand-ins.",
        )


def _check_dimensions(setting: str, name: str, dimensions: int | None) -> None:
    if dimensions != settings.EMBEDDING_DIMENSIONS:
        raise EncoderUnavailable(
            setting,
            f"The encoder {name!r} set by {setting} makes {dimensions}-dimensional vectors, but "
            f"EMBEDDING_DIMENSIONS is {settings.EMBEDDING_DIMENSIONS}. Image and text encoders must share "
            f"one vector space of EMBEDDING_DIMENSIONS dimensions.",
        )


def _offline_help(setting: str, name: str) -> str:
    return (
        f"Set {setting} to a local folder holding the encoder: on a machine with internet, run "
        f"`python -c \"from sentence_transformers import SentenceTransformer as S; S('{name}').save('/models/x')\"` "
        f"and copy /models/x here, or pre-fill the Hugging Face cache (HF_HOME). "
        f"For a site that runs but does not understand images, `python manage.py make_standin_encoders var/models` "
        f"builds offline stand-ins."
    )


def _load_uncached(setting: str, name: str) -> SentenceTransformer:
    _check_name(setting, name)
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(os.path.expanduser(name), device=settings.EMBEDDING_DEVICE)
    except Exception as exc:  # network errors, missing files, bad configs: all mean "cannot load"
        raise EncoderUnavailable(
            setting,
            f"Could not load the encoder {name!r} set by {setting}: {exc.__class__.__name__}: {exc}. "
            f"{_offline_help(setting, name)}",
        ) from exc
    model.eval()
    _check_dimensions(setting, name, model.get_embedding_dimension())
    return model


# Files up to this size are hashed whole (configs, tokenizers); larger ones (weights) by their size and
# their first and last FINGERPRINT_SLICE bytes: retraining rewrites them throughout, and reading 2 MiB
# of a 600 MB checkpoint keeps the id cheap. Computed once per process and encoder (see clear_cache).
FINGERPRINT_WHOLE = 1 << 20
FINGERPRINT_SLICE = 1 << 20
_fingerprints: dict[str, str] = {}


def fingerprint(name: str) -> str:
    """12 hex digits that change when the encoder folder ``name`` holds other weights; "" for a hub name.

    Content only (not paths or times): a copy of the same folder elsewhere has the same fingerprint.
    """
    folder = Path(os.path.expanduser(name))
    if not _looks_like_path(name) or not folder.is_dir():
        return ""
    cached = _fingerprints.get(name)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= FINGERPRINT_WHOLE:
                digest.update(handle.read())
            else:
                digest.update(handle.read(FINGERPRINT_SLICE))
                handle.seek(size - FINGERPRINT_SLICE)
                digest.update(handle.read(FINGERPRINT_SLICE))
    _fingerprints[name] = value = digest.hexdigest()[:12]
    return value


def image_encoder_id(name: str | None = None) -> str:
    """What is stored beside each vector made by the image encoder ``name`` (CLIP_IMAGE_MODEL by default).

    The name, and for a local folder a fingerprint of its content (``fingerprint``): an encoder
    retrained in the same folder gets another id, so its old vectors can be told apart and redone.
    int8 vectors are marked: they measurably differ from the encoder's own (bench/README.md), so the
    admin can tell them apart and ``embed_images --reembed`` can redo them. ONNX fp32 computes the
    same function as torch up to float rounding (cosine >= 0.999), so it shares torch's id.
    """
    name = name or settings.CLIP_IMAGE_MODEL
    encoder_id = name
    if content := fingerprint(name):
        encoder_id = f"{name} #{content}"
    if settings.EMBEDDING_BACKEND == "onnx-int8":
        encoder_id = f"{encoder_id} (onnx-int8)"
    return encoder_id


def get_image_encoder(name: str | None = None) -> SentenceTransformer | OnnxEncoder:
    """The image encoder ``name`` (CLIP_IMAGE_MODEL by default): a SentenceTransformer with torch, else ONNX Runtime."""
    return _load(IMAGE_SETTING, name or settings.CLIP_IMAGE_MODEL)


def get_text_encoder(name: str | None = None) -> SentenceTransformer | OnnxEncoder:
    """The query encoder ``name`` (CLIP_TEXT_MODEL by default): a SentenceTransformer with torch, else ONNX Runtime."""
    return _load(TEXT_SETTING, name or settings.CLIP_TEXT_MODEL)


def _encode(model: SentenceTransformer | OnnxEncoder, inputs: Sequence, batch_size: int | None) -> np.ndarray:
    if not inputs:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    from .onnx_backend import OnnxEncoder  # light: onnxruntime is imported when an encoder is made

    batch_size = batch_size or settings.EMBEDDING_BATCH_SIZE
    if isinstance(model, OnnxEncoder):
        return model.encode(list(inputs), batch_size=batch_size)

    import torch

    with torch.inference_mode():
        vectors = model.encode(
            list(inputs),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def encode_images(images: Sequence[PILImage], *, batch_size: int | None = None, model: str | None = None) -> np.ndarray:
    """L2-normalised float32 vectors, one row per PIL image (converted to RGB), by ``model`` or CLIP_IMAGE_MODEL."""
    rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    return _encode(get_image_encoder(model), rgb, batch_size)


def encode_texts(texts: Sequence[str], *, batch_size: int | None = None, model: str | None = None) -> np.ndarray:
    """L2-normalised float32 vectors, one row per string, by ``model`` or CLIP_TEXT_MODEL."""
    return _encode(get_text_encoder(model), list(texts), batch_size)


def encode_text(text: str, *, model: str | None = None) -> np.ndarray:
    return encode_texts([text], model=model)[0]


def clear_cache() -> None:
    """Forget loaded encoders (tests switch settings between them)."""
    with _lock:
        _encoders.clear()
        _fingerprints.clear()
