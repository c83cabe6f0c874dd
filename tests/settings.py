"""Test settings: the project's settings, with a development key (tests never serve the public)."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

from config.settings import *

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# The test client and live_server speak plain HTTP; production keeps these on (see config/settings.py).
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Many tests search by image from the one test client; tests/search/test_throttle.py turns the limit on.
IMAGE_SEARCH_RATE = ""
# Celery workers started by tests/gallery/test_tasks.py decode with a function that can crash them.
EMBED_DECODE_FUNCTION = os.environ.get("TEST_EMBED_DECODE_FUNCTION", EMBED_DECODE_FUNCTION)
