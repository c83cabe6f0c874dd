"""Site-wide system checks: the database connection pool (DATABASE_POOL=1), read replicas, the metrics token."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error

from gallery.checks import seconds, whole_number

POSTGRESQL_ENGINES = ("django.db.backends.postgresql", "config.embedded_postgres")


def check_database_pool(app_configs=None, **kwargs) -> list[Error]:
    """DATABASE_POOL_MIN, DATABASE_POOL_MAX and DATABASE_POOL_TIMEOUT, when the pool is on.

    Otherwise psycopg's pool refuses wrong sizes only when the first request opens it, with a 500;
    a timeout of 0 would turn every wait for a connection into "database unavailable".
    """
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if not isinstance(pool, dict):  # off, or True: psycopg's defaults
        return []
    smallest = pool.get("min_size", 4)  # psycopg_pool's defaults
    errors = whole_number("DATABASE_POOL_MIN", smallest, low=0, id="core.E001")
    if pool.get("max_size") is not None:
        errors += whole_number(
            "DATABASE_POOL_MAX",
            pool["max_size"],
            low=max(1, smallest) if not errors else 1,
            id="core.E002",
            hint="The most connections the pool of one process opens: at least 1, and at least DATABASE_POOL_MIN.",
        )
    return errors + seconds("DATABASE_POOL_TIMEOUT", pool.get("timeout", 30.0), id="core.E003")


def check_replicas(app_configs=None, **kwargs) -> list[Error]:
    """REPLICA_READ_YOUR_WRITES_SECONDS, REPLICA_RETRY_SECONDS, and replicas that are PostgreSQL.

    Search runs pgvector's operators and settings on a replica, so a replica URL of another kind
    would only fail at the first search.
    """
    errors = whole_number(
        "REPLICA_READ_YOUR_WRITES_SECONDS", settings.REPLICA_READ_YOUR_WRITES_SECONDS, low=0, id="core.E011"
    )
    errors += seconds("REPLICA_RETRY_SECONDS", settings.REPLICA_RETRY_SECONDS, zero=True, id="core.E012")
    for alias in settings.DATABASE_REPLICAS:
        engine = settings.DATABASES[alias]["ENGINE"]
        if engine not in POSTGRESQL_ENGINES:
            errors.append(
                Error(
                    f"DATABASE_REPLICA_URLS must name PostgreSQL databases (postgres://...), not {engine!r} "
                    f"(the database {alias}).",
                    hint="A streaming replica of the primary, made with pg_basebackup -R (README, 'Read replicas').",
                    id="core.E013",
                )
            )
    return errors


METRICS_TOKEN_MIN_LENGTH = 32


def check_metrics_token(app_configs=None, **kwargs) -> list[Error]:
    """METRICS_TOKEN opens /metrics to whoever sends it: a short one could be guessed."""
    token = settings.METRICS_TOKEN
    if not token or len(token) >= METRICS_TOKEN_MIN_LENGTH:
        return []
    return [
        Error(
            f"METRICS_TOKEN is {len(token)} characters long; it must be at least {METRICS_TOKEN_MIN_LENGTH}.",
            hint='Make one with: python -c "import secrets; print(secrets.token_urlsafe(32))", or leave it empty.',
            id="core.E004",
        )
    ]
