import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.conftest import ROOT


@pytest.mark.django_db
def test_pooled_connections_serve_queries():
    """DATABASE_POOL=1 gives each process a psycopg pool on the same (embedded) database."""
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings'); django.setup();"
        "from django.db import connection; from gallery.models import Image;"
        "assert connection.pool is not None, 'no pool';"
        "print(Image.objects.count(), connection.pool.get_stats()['pool_size'])"
    )
    env = dict(os.environ, DATABASE_POOL="1", EMBEDDED_DB_NAME=connection.settings_dict["NAME"])
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    count, pool_size = map(int, result.stdout.split())
    assert count >= 0 and pool_size >= 2
