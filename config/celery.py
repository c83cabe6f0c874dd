"""The Celery app of the background embedding workers (Celery's documented Django layout).

Used only when CELERY_BROKER_URL is set; start a worker with ``celery -A config worker -Q embed``.
Importing this module loads Celery, never torch: the encoder loads in a worker's first task.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("imagesearch")
# Every CELERY_* setting in config/settings.py (CELERY_BROKER_URL -> broker_url, ...).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
