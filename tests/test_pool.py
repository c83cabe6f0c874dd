import json
import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.conftest import ROOT

# Run with DATABASE_POOL=1 and a pool of one to two connections: five requests one after another,
# then six threads at once (each holding its connection for 0.3 s), as gunicorn's threads would.
CODE = """
import json, os, threading
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
django.setup()
from django.db import connection
from gallery.models import Image

def request(pids, start=None):
    if start:
        start.wait()
    Image.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(%s)", [0.3 if start else 0])
        pids.append(cursor.fetchone()[0])
    connection.close()  # the end of a request: with a pool, the connection goes back to it

one_after_another = []
for _ in range(5):
    request(one_after_another)
at_once = []
start = threading.Barrier(6)
threads = [threading.Thread(target=request, args=(at_once, start)) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"one_after_another": one_after_another, "at_once": at_once, "stats": connection.pool.get_stats()}))
"""


@pytest.mark.django_db
def test_queries_go_through_the_pool_and_it_bounds_the_connections():
    """DATABASE_POOL=1: connections are taken from the psycopg pool and given back, never more than its size."""
    env = dict(
        os.environ,
        DATABASE_POOL="1",
        DATABASE_POOL_MIN="1",
        DATABASE_POOL_MAX="2",
        EMBEDDED_DB_NAME=connection.settings_dict["NAME"],
    )
    result = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    stats, backends = seen["stats"], set(seen["one_after_another"] + seen["at_once"])
    assert len(seen["one_after_another"]) == 5 and len(seen["at_once"]) == 6, seen
    # Eleven requests, each closing its connection, were served by the pool's one or two server
    # processes: without the pool each close ends the session and every request gets a new backend.
    assert stats["requests_num"] == 11, stats
    assert len(backends) == stats["connections_num"] <= stats["pool_max"] == 2, seen
    # Six at once cannot each have a connection, so some waited for one to come back.
    assert stats.get("requests_queued", 0) >= 1, stats
