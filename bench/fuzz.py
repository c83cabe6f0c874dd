"""A long fuzzing run of the JSON API: tests/search/test_fuzz_api.py with many more examples per operation.

The test suite sends each operation schemathesis's coverage cases and 50 generated requests,
the same ones every run. This runs the same test (pytest, the test database, the stand-in models,
the WSGI app in this process) with ``--examples`` generated requests per operation and a fresh
random seed, or ``--seed`` to repeat a run; a failure shows the request that caused it (as curl)
and the seed repeats it. Prints one JSON line: the seed, the operations, the requests sent to each
(the examples tried, shrinking included), each distinct failure (operation, check, the smallest
request as curl) and the time; the exit status is pytest's.

    .venv/bin/python bench/fuzz.py [--examples 1000] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_FILE = "tests/search/test_fuzz_api.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="generated requests per operation")
    parser.add_argument("--seed", type=int, default=None, help="repeat the run with this seed (default: random)")
    parser.add_argument("--verbose", action="store_true", help="pytest's own report as well")
    args = parser.parse_args()

    import pytest

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    os.environ.update(FUZZ_MAX_EXAMPLES=str(args.examples), FUZZ_SEED=str(seed))
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    options = ["-p", "no:cacheprovider", "-q" if args.verbose else "-qq", "--tb=short" if args.verbose else "--tb=no"]
    exit_code = pytest.main([*options, TEST_FILE])
    seconds = time.perf_counter() - started

    module = sys.modules.get("tests.search.test_fuzz_api")
    tried = dict(module.tried) if module else {}
    failed = [
        {"operation": operation, "failure": title, "request": curl}
        for (operation, title), curl in (module.failures.items() if module else [])
    ]
    print(
        json.dumps(
            {
                "seed": seed,
                "examples_per_operation_asked": args.examples,
                "operations": len(tried),
                "requests": tried,
                "requests_total": sum(tried.values()),
                "failures": len(failed),
                "failed": failed,
                "seconds": round(seconds, 1),
            },
            ensure_ascii=False,
        )
    )
    sys.exit(int(exit_code))


if __name__ == "__main__":
    main()
