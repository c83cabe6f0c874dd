"""Benchmark scripts, run as ``python -m bench.NAME`` from the project's folder; figures in bench/README.md."""
