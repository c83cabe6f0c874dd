"""gunicorn settings for a small machine: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

Each worker process loads the models once (lazily, on its first search) and keeps them; threads
share them. Searches are CPU-bound in torch, which already uses every core for one query, so more
processes than cores only multiply memory (a full-size text model is ~0.5 GB per process).
Override any of these with GUNICORN_* environment variables or command-line flags.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", max(1, min(os.cpu_count() or 1, 4))))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 120))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak in a native library cannot grow forever.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
