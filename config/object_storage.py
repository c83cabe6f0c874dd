"""The default storage's settings for S3-compatible object storage (django-storages), used by settings.py and the tests."""

from __future__ import annotations


def s3_storage(
    *,
    bucket: str,
    endpoint_url: str | None = None,
    addressing_style: str | None = None,
    signature_version: str | None = None,
    timeout: float = 10.0,
    **options,
) -> dict:
    """STORAGES["default"] for ``bucket``; ``options`` go to S3Storage as they are (credentials, region...).

    ``timeout``: seconds to connect to, and to wait for, the object store, each of two tries. botocore's
    own default (60 s, retried up to five times) would hold an upload for minutes while the store is down.
    """
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            # Names come from content: the same name is the same bytes, never a new version.
            "file_overwrite": False,
            "client_config": Config(
                s3={"addressing_style": addressing_style or None},
                signature_version=signature_version or None,
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
            **options,
        },
    }
