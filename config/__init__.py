# The Celery app, loaded with Django so that tasks enqueued by the web process use it (Celery's
# documented layout). Light: Celery only; nothing connects to a broker until a task is sent.
from .celery import app as celery_app

__all__ = ["celery_app"]
