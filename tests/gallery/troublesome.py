"""A decoder for tests: decodes normally, but hangs on hang.jpg and dies on crash.jpg, like broken codecs do."""

import os
import time

from gallery.imaging import decode as real_decode


def decode(path, **options):
    name = os.path.basename(path)
    if name == "hang.jpg":
        time.sleep(3600)
    if name == "crash.jpg":
        os._exit(139)  # as a segfault in a C decoder would end the process
    return real_decode(path, **options)


# For background embedding (tests/gallery/test_tasks.py): the Celery worker decodes a file read from
# the storage, where its name is made from its content, so the file is marked inside, by a JPEG comment.
KILL_MARKER = b"kill-the-worker"
HANG_MARKER = b"hang-the-worker"


def decode_or_die(source, **options):
    """Decodes normally, but ends the process on a file carrying KILL_MARKER (a codec that segfaults on it)
    and hangs on one carrying HANG_MARKER.

    TEST_DECODE_SECONDS makes every decode take that long, so that a test can kill a worker mid-batch.
    """
    head = source.read(4096)
    source.seek(0)
    if KILL_MARKER in head:
        os._exit(139)
    if HANG_MARKER in head:
        time.sleep(3600)
    time.sleep(float(os.environ.get("TEST_DECODE_SECONDS") or 0))
    return real_decode(source, **options)
