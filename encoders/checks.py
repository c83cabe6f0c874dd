"""System checks for the encoder settings: a wrong value fails ``manage.py check``, not the first search."""

from django.conf import settings
from django.core.checks import Error

from .embeddings import BACKEND_SETTING, BACKENDS, IMAGE_SETTING, TEXT_SETTING


def check_encoder_settings(app_configs=None, **kwargs) -> list[Error]:
    """EMBEDDING_BACKEND, EMBEDDING_BATCH_SIZE, CLIP_IMAGE_MODEL and CLIP_TEXT_MODEL."""
    errors = []
    backend = settings.EMBEDDING_BACKEND
    if backend not in BACKENDS:
        errors.append(
            Error(
                f"{BACKEND_SETTING} must be one of {', '.join(BACKENDS)}, not {backend!r}.",
                hint="torch runs the encoders as they are; onnx and onnx-int8 run ONNX Runtime exports of them.",
                id="encoders.E001",
            )
        )
    batch_size = settings.EMBEDDING_BATCH_SIZE
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        errors.append(
            Error(
                f"EMBEDDING_BATCH_SIZE must be a whole number, 1 or more, not {batch_size!r}.",
                hint="Images per encoder call.",
                id="encoders.E002",
            )
        )
    for setting, name in ((IMAGE_SETTING, settings.CLIP_IMAGE_MODEL), (TEXT_SETTING, settings.CLIP_TEXT_MODEL)):
        if not str(name or "").strip():
            errors.append(
                Error(
                    f"{setting} must name an encoder: a Hugging Face hub name or a local folder, not {name!r}.",
                    hint="`python manage.py make_standin_encoders var/models` builds offline stand-ins.",
                    id="encoders.E003",
                )
            )
    return errors
