"""A long fuzzing run of the JSON API: tests/search/test_fuzz_api.py with many more examples per operation.

The test suite sends each operation schemathesis's coverage cases and 50 generated requests,
the same ones every run. This runs the same test (pytest, the test database, the stand-in encoders,
the WSGI app in this process) with ``--examples`` generated requests per operation and a fresh
random seed, or ``--seed`` to repeat a run; a failure shows the request that caused it (as curl)
and the seed repeats it. Prints one JSON line: the seed, the operations, the requests sent to each
(the examples tried, shrinking included), each distinct failure (operation, check, the smallest
request as curl) and the time; the exit status is pytest's.

    .venv/bin/python -m bench.fuzz [--examples 1000] [--seed N]
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

from bench.common import ROOT, argument_parser

TEST_FILE = "tests/search/test_fuzz_api.py"


def run_test(*, examples: int, seed: int, verbose: bool) -> int:
    """pytest on the fuzzing test in this process (so its module's counts can be read afterwards); its exit status."""
    import pytest

    os.environ.update(FUZZ_MAX_EXAMPLES=str(examples), FUZZ_SEED=str(seed))
    os.chdir(ROOT)  # pytest's configuration and the test's relative paths
    options = ["-p", "no:cacheprovider", "-q" if verbose else "-qq", "--tb=short" if verbose else "--tb=no"]
    return int(pytest.main([*options, TEST_FILE]))


def summary() -> dict:
    """Requests sent to each operation and each distinct failure, as the test module counted them."""
    module = sys.modules.get("tests.search.test_fuzz_api")
    tried = dict(module.tried) if module else {}
    failed = [
        {"operation": operation, "failure": title, "request": curl}
        for (operation, title), curl in (module.failures.items() if module else [])
    ]
    return {
        "operations": len(tried),
        "requests": tried,
        "requests_total": sum(tried.values()),
        "failures": len(failed),
        "failed": failed,
    }


def main() -> None:
    parser = argument_parser(__doc__, __spec__.name)
    parser.add_argument("--examples", type=int, default=1000, help="generated requests per operation")
    parser.add_argument("--seed", type=int, default=None, help="repeat the run with this seed (default: random)")
    parser.add_argument("--verbose", action="store_true", help="pytest's own report as well")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    started = time.perf_counter()
    exit_code = run_test(examples=args.examples, seed=seed, verbose=args.verbose)
    line = {"seed": seed, "examples_per_operation_asked": args.examples} | summary()
    print(json.dumps(line | {"seconds": round(time.perf_counter() - started, 1)}, ensure_ascii=False))
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
