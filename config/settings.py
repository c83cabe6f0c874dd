"""Settings, all read from the environment (or a .env file beside manage.py); see .env.example.

Values with a closed set or a range are checked by `manage.py check` (each app's checks.py).
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# ENV_FILE names another file (or /dev/null for none); real environment variables always win.
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

# Core
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (see .env.example), "
            "or set DEBUG=1 to use a development key."
        )
    SECRET_KEY = "django-insecure-development-key-only-used-while-DEBUG-is-on"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Imports run one way: encoders <- gallery <- search (tests/test_layers.py); core is site-wide.
    "core",
    "encoders",
    "gallery",
    "search",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    # Only with DATABASE_REPLICA_URLS: a client that just wrote reads the primary (config/replicas.py).
    "core.middleware.ReadYourWritesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.site",
            ],
        },
    },
]

# Database: DATABASE_URL, or the embedded PostgreSQL + pgvector under var/pgdata.
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "config.embedded_postgres",
            "NAME": env.str("EMBEDDED_DB_NAME", default="imagesearch"),
            "OPTIONS": {"pgdata": env.path("EMBEDDED_PGDATA", default=VAR_DIR / "pgdata")},
        }
    }
# Read replicas: searches read from these (config/replicas.py), everything else from the primary.
# Comma-separated database URLs (a Unix socket: postgres://user@/name?host=/run/postgresql&port=5432);
# each becomes the alias "replica", "replica_2", ... Empty: no replicas, everything on the primary.
DATABASE_REPLICAS = []
for number, url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[]), start=1):
    alias = "replica" if number == 1 else f"replica_{number}"
    DATABASES[alias] = env.db_url_config(url)
    # A replica that does not answer is given up quickly: the search is run on the primary instead.
    DATABASES[alias].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("REPLICA_CONNECT_TIMEOUT", default=3)
    )
    # Tests: the replica alias reads the test database (tests/test_replicas.py points it at a real replica).
    DATABASES[alias]["TEST"] = {"MIRROR": "default"}
    DATABASE_REPLICAS.append(alias)
if DATABASE_REPLICAS:
    DATABASE_ROUTERS = ["config.replicas.PrimaryRouter"]
# After a request that wrote (an upload in the admin), that client's searches and image pages
# read the primary for this many seconds, so they see what they just added (replicas lag a little).
REPLICA_READ_YOUR_WRITES_SECONDS = env.int("REPLICA_READ_YOUR_WRITES_SECONDS", default=10)
# A replica that failed is left alone (its searches go to the primary) for this many seconds.
REPLICA_RETRY_SECONDS = env.float("REPLICA_RETRY_SECONDS", default=30.0)
# A psycopg connection pool per process (DATABASE_POOL=1, sized for gunicorn's threads), or
# persistent connections kept CONN_MAX_AGE seconds. Django allows one or the other. Replicas too.
for alias in ("default", *DATABASE_REPLICAS):
    if env.bool("DATABASE_POOL", default=False):
        DATABASES[alias].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=8),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
        if alias != "default":
            # A replica's pool waits no longer than its connect timeout: the primary answers instead.
            pool = DATABASES[alias]["OPTIONS"]["pool"]
            pool["timeout"] = min(pool["timeout"], DATABASES[alias]["OPTIONS"]["connect_timeout"])
        DATABASES[alias]["CONN_MAX_AGE"] = 0
    else:
        DATABASES[alias].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES[alias].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Static files and media
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
# Serve MEDIA_ROOT from Django itself (fine for a small self-hosted site; a proxy is faster).
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=True)

# Encoders (CLIP and its multilingual text twin): hub names (downloaded on first use) or local paths.
CLIP_IMAGE_MODEL = env.str("CLIP_IMAGE_MODEL", default="clip-ViT-B-32")
CLIP_TEXT_MODEL = env.str("CLIP_TEXT_MODEL", default="sentence-transformers/clip-ViT-B-32-multilingual-v1")
# The pair to switch to without downtime (`manage.py switch_encoder`, gallery/switch.py); empty: none.
NEXT_CLIP_IMAGE_MODEL = env.str("NEXT_CLIP_IMAGE_MODEL", default="")
NEXT_CLIP_TEXT_MODEL = env.str("NEXT_CLIP_TEXT_MODEL", default="")
EMBEDDING_DIMENSIONS = env.int("EMBEDDING_DIMENSIONS", default=512)
EMBEDDING_DEVICE = env.str("EMBEDDING_DEVICE", default="") or None
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=32)
# Inference: torch (fp32), onnx (ONNX Runtime, fp32) or onnx-int8 (int8 weights, fastest on CPU);
# the ONNX exports are made from the encoders above on first use and cached in ONNX_CACHE_DIR.
EMBEDDING_BACKEND = env.str("EMBEDDING_BACKEND", default="torch")
ONNX_CACHE_DIR = env.path("ONNX_CACHE_DIR", default=VAR_DIR / "onnx")
THUMBNAIL_SIZE = env.int("THUMBNAIL_SIZE", default=384)
# Pillow's decompression-bomb guard: images with more pixels are refused.
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=100_000_000)

# The demo (scripts/run --demo): the page says it shows a generated world searched with encoders
# trained on it, and how to switch to real photos and the real encoders.
DEMO = env.bool("DEMO", default=False)

# Search
SEARCH_PAGE_SIZE = env.int("SEARCH_PAGE_SIZE", default=24)
# HNSW candidates per query (raised for deep pages, up to 1000). 300, not pgvector's 40: text queries
# sit far from every image vector (CLIP's modality gap), so the graph walk needs more candidates to
# find their neighbours; 300 is the lowest value that meets the recall goal (bench/README.md, "Search").
HNSW_EF_SEARCH = env.int("HNSW_EF_SEARCH", default=300)
# Search by image runs the image model, so it is limited (search/throttle.py): this many per client
# ("20/minute", "100/hour"; 0 or empty: no limit), counted in the default cache. Django's default
# cache is per process, so with several gunicorn workers a client gets up to workers x the rate.
IMAGE_SEARCH_RATE = env.str("IMAGE_SEARCH_RATE", default="20/minute")
# Images decoded and encoded at once per process (0: no cap); a search that finds no free slot
# within IMAGE_SEARCH_QUEUE_TIMEOUT seconds is refused with a 429 rather than queued.
IMAGE_SEARCH_CONCURRENCY = env.int("IMAGE_SEARCH_CONCURRENCY", default=2)
IMAGE_SEARCH_QUEUE_TIMEOUT = env.float("IMAGE_SEARCH_QUEUE_TIMEOUT", default=2.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}

# Prometheus metrics at /metrics (core/metrics.py), off by default: request metrics from
# django-prometheus's middleware, search latency by kind, images embedded, images by state, the
# embedding queue's depth. Readable by staff logged in to the admin, or by Prometheus sending
# "Authorization: Bearer <METRICS_TOKEN>" (empty: staff only). Under gunicorn set
# PROMETHEUS_MULTIPROC_DIR in the environment too (README, "Metrics").
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_ENABLED:
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *MIDDLEWARE,
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]

# Storage: the file system under MEDIA_ROOT, or S3-compatible object storage (django-storages)
# when AWS_STORAGE_BUCKET_NAME is set (credentials and endpoint from the usual AWS_* variables).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# AWS_S3_ADDRESSING_STYLE=path for servers other than AWS (MinIO, SeaweedFS) reached by a host name;
# STORAGE_TIMEOUT: seconds to connect to and wait for the object store (config/object_storage.py).
if env.str("AWS_STORAGE_BUCKET_NAME", default=""):
    from .object_storage import s3_storage

    STORAGES["default"] = s3_storage(
        bucket=env.str("AWS_STORAGE_BUCKET_NAME"),
        endpoint_url=env.str("AWS_S3_ENDPOINT_URL", default=""),
        addressing_style=env.str("AWS_S3_ADDRESSING_STYLE", default=""),
        signature_version=env.str("AWS_S3_SIGNATURE_VERSION", default=""),
        timeout=env.float("STORAGE_TIMEOUT", default=10.0),
    )

# Uploads (admin and search by image)
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DATA_UPLOAD_MAX_NUMBER_FILES", default=500)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Ingestion: a file that takes longer than this many seconds to decode is skipped (its worker killed).
INGEST_FILE_TIMEOUT = env.float("INGEST_FILE_TIMEOUT", default=60.0)

# Security. Production (DEBUG off) defaults to HTTPS-only cookies and HSTS; behind a TLS-terminating
# proxy set SECURE_PROXY_SSL_HEADER=1 so Django trusts its X-Forwarded-Proto header.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many proxies in front of the site append to X-Forwarded-For (0: none, the header is ignored).
# The image search rate counts per client address: behind a proxy REMOTE_ADDR is the proxy's, and
# without a proxy anyone could write X-Forwarded-For to look like a new client on every request.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Search may be public; set this to require a login for it (the admin always requires staff).
SEARCH_REQUIRES_LOGIN = env.bool("SEARCH_REQUIRES_LOGIN", default=False)
LOGIN_URL = "admin:login"

# How vectors are stored: "vector" (float32) or "halfvec" (float16: half the table and index).
# Convert an existing table with `manage.py vector_storage halfvec` (or `vector`).
# halfvec by default: the same recall and speed in half the memory (bench/README.md, "Scale"); CLIP's
# cosines need no more than float16's three decimal digits. The query vector adapts to the column.
VECTOR_STORAGE = env.str("VECTOR_STORAGE", default="halfvec")
# Memory (a PostgreSQL size: 1GB, 512MB) and parallel workers PostgreSQL may use to build the HNSW index.
HNSW_BUILD_MEMORY = env.str("HNSW_BUILD_MEMORY", default="1GB")
HNSW_BUILD_WORKERS = env.int("HNSW_BUILD_WORKERS", default=2)

# Background embedding (Celery workers). Empty CELERY_BROKER_URL (the default): no broker, uploads and
# embed_images embed in-process as always. Set (redis://host:6379/0): the admin upload stores files and
# answers at once, `embed_images --queue` enqueues, and `celery -A config worker -Q embed` embeds.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# The queue uploads and `embed_images --queue` send to; a GPU fleet can listen on its own (`-Q gpu`).
EMBED_QUEUE = env.str("EMBED_QUEUE", default="embed")
# Images per task: one encoder batch on a worker.
EMBED_TASK_BATCH = env.int("EMBED_TASK_BATCH", default=32)
# How images are decoded on a worker (a dotted path; tests swap in one that crashes on a marked file).
EMBED_DECODE_FUNCTION = "gallery.imaging.decode"
# Nothing lost, nothing doubled: a task is acknowledged only once it is done (a worker that dies gives
# its batch back), one task at a time per worker process, JSON only, no result store (state is the row).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = EMBED_QUEUE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers a batch whose worker vanished (SIGKILL, a lost machine) once this many seconds have
# passed since it was handed out; it must exceed the longest a batch can take (queued behind one other
# on a worker, then embedded: seconds on a GPU, under a minute on a CPU), or a slow batch runs twice
# (harmless, but wasted). 600 s: a dead worker's batch is redone within about ten minutes.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=600),
    # Look for abandoned batches every visibility_timeout/10 seconds rather than kombu's 100.
    "unacked_restore_interval": max(1, env.int("CELERY_VISIBILITY_TIMEOUT", default=600) // 10),
    "unacked_restore_throttle": 1,
}
# A task (a batch of EMBED_TASK_BATCH images) still running after this many seconds has its worker
# process killed and the batch handed back, like a crash (a decoder that hangs on a file); it must be
# well under CELERY_VISIBILITY_TIMEOUT and above the slowest batch (bench/README.md, "Background embedding").
CELERY_TASK_TIME_LIMIT = env.int("EMBED_TASK_TIME_LIMIT", default=300)
CELERY_TASK_ACKS_ON_TIMEOUT = False
# A web request that enqueues never waits long for a broker that is down: it says so instead.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
