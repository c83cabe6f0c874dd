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
