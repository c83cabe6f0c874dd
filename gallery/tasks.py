"""Celery tasks (found by config/celery.py's autodiscovery); the work itself is in gallery/background.py."""

import os

from celery import shared_task
from django.db import DatabaseError

from .storage import StorageWriteError

# As embed_images does for itself (bench/README.md, "Ingestion"): set before torch loads, in the first task.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# Late ack and reject-on-worker-lost come from the settings (CELERY_TASK_*); a database or storage
# that is briefly away makes the task wait and try again rather than leave its images pending.
@shared_task(
    name="gallery.embed_batch",
    autoretry_for=(DatabaseError, StorageWriteError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=20,
)
def embed_batch(image_ids: list[int]) -> dict[str, int]:
    """Embed the pending images among ``image_ids`` (a batch from gallery.background.enqueue)."""
    from .background import embed_stored

    return embed_stored(image_ids)
