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

# Prometheus (METRICS_ENABLED): each worker counts its own requests and searches, and Prometheus
# reaches only whichever worker answers its scrape. With PROMETHEUS_MULTIPROC_DIR set in the
# environment (an empty folder only this server writes to, e.g. a tmpfs), every worker writes its
# figures there and /metrics sums them all (prometheus_client's multiprocess mode).
_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def on_starting(server):
    # Figures from a previous run would be summed in with this one's: start from an empty folder.
    if _multiproc_dir:
        import shutil

        os.makedirs(_multiproc_dir, exist_ok=True)
        for entry in os.scandir(_multiproc_dir):
            if entry.is_file() and entry.name.endswith(".db"):
                os.unlink(entry.path)
            elif entry.is_dir():
                shutil.rmtree(entry.path)


def child_exit(server, worker):
    # A recycled worker's counters stay in the sums; only its live gauges must go.
    if _multiproc_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
