"""The benchmarks stay runnable: each ``python -m bench.NAME`` imports and parses its flags.

Their figures take minutes to an hour (bench/README.md); this catches what rots in the meantime,
such as an import of a module that moved.
"""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

BENCHMARKS = sorted(
    path.stem for path in (ROOT / "bench").glob("*.py") if path.stem not in {"__init__", "common", "data"}
)


def test_every_benchmark_is_listed():
    assert BENCHMARKS == ["backends", "fuzz", "ingest", "load", "scale", "search"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_runs_as_a_module(name):
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m bench.{name}")
