"""Test settings: the project's settings, with a development key (tests never serve the public)."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

from config.settings import *

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
