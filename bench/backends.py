"""Inference backends: speed of each EMBEDDING_BACKEND, and how close its vectors come to torch's.

With the full-size stand-ins (`make_standin_encoders --full-size`: the real CLIP ViT-B/32 and
DistilBERT-multilingual architectures, random weights), for torch, onnx and onnx-int8:

  images_per_s   the image encoder on batches of 32 ready inputs (each backend's own preprocessing of
                 the same 32 pictures, done before the clock starts); median over all batches
  images_per_s_quiet  the median over the batches during which other processes used less than
                 0.2 of a core (from /proc/stat; others_cores_* says how much they used), so that
                 a shared machine's load does not pass for a backend's speed
  query_p50_ms   encoders.embeddings.encode_text of one short multilingual string: tokenising, the
                 encoder and normalising, as a search request pays it
  image_cosine_* cosine to torch's vector for the same 100 pictures (tests.factories.photo, 320x240),
                 through encode_images in batches of 32
  text_cosine_*  the same for 100 short multilingual texts, through encode_texts
  batch1_cosine_min  a picture encoded alone against the same picture in a batch of 32 (int8
                 scales activations per batch, so its vectors depend a little on their batch)

Timings run in a fresh process per backend, as a server runs one backend: torch's OpenMP threads
and ONNX Runtime's pools in one process slow each other down (torch queries 10x slower when
interleaved with ONNX calls, unless OMP_WAIT_POLICY=PASSIVE). The processes alternate between the
backends in a rotating order, so drifting load from other processes falls on all of them alike.
ONNX exports are cached in ONNX_CACHE_DIR (default var/onnx); load_s is the first use in the
agreement process (an export when cache is "cold"). Prints one JSON line per backend.

    .venv/bin/python -m bench.backends [--rounds 3] [--batches 6] [--queries 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import FULL_SIZE_ENCODERS, ROOT, argument_parser, full_size_encoders, setup_django

BACKENDS = ["torch", "onnx", "onnx-int8"]
SUBJECTS = [
    "a cat",
    "ein Hund",
    "une voiture rouge",
    "un perro",
    "雪山",
    "海滩上的狗",
    "ソファの猫",
    "قطة نائمة",
    "красная машина",
    "γάτα",
    "बिल्ली",
    "고양이",
]
CONTEXTS = [
    "",
    " at night",
    " am Strand",
    " sous la pluie",
    " 在公园里",
    " في الشارع",
    " зимой",
    " in the snow",
    " on a boat",
]
TEXTS = [subject + context for context in CONTEXTS for subject in SUBJECTS][:100]
QUIET_CORES = 0.2  # a batch counts as quiet when other processes used less than this many cores
QUERIES = ["ein roter Hund am Strand", "雪山", "قطة نائمة", "a cat on a sofa", "une voiture la nuit", "собака"]


def use(backend: str) -> None:
    from django.conf import settings

    settings.EMBEDDING_BACKEND = backend


def cache_state(backend: str) -> str:
    """Whether both ONNX exports were already cached before this run ("warm") or not ("cold")."""
    from django.conf import settings

    from encoders import onnx_backend

    if backend == "torch":
        return "none"
    for name, modality in ((settings.CLIP_IMAGE_MODEL, "image"), (settings.CLIP_TEXT_MODEL, "text")):
        folder = onnx_backend.export_folder(
            cache_dir=Path(settings.ONNX_CACHE_DIR),
            name=name,
            source=onnx_backend.source_folder(name=name),
            modality=modality,
            backend=backend,
        )
        if not (folder / onnx_backend.META_FILE).exists():
            return "cold"
    return "warm"


def encoder_megabytes(backend: str) -> float:
    from django.conf import settings

    from encoders import embeddings

    if backend == "torch":
        files = [
            Path(settings.CLIP_IMAGE_MODEL) / "model.safetensors",
            Path(settings.CLIP_TEXT_MODEL) / "model.safetensors",
        ]
    else:
        files = [
            encoder.folder / "model.onnx" for encoder in (embeddings.get_image_encoder(), embeddings.get_text_encoder())
        ]
    return round(sum(f.stat().st_size for f in files) / 1e6, 1)


def agreement(backends: list[str]) -> dict[str, dict]:
    """Load each backend (exporting on a cold cache) and compare its vectors with torch's."""
    from encoders import embeddings
    from tests.factories import photo

    pictures = [photo(seed) for seed in range(100)]
    facts: dict[str, dict] = {}
    vectors = {}
    for backend in backends:
        cache = cache_state(backend)
        use(backend)
        started = time.perf_counter()
        embeddings.get_image_encoder()
        embeddings.get_text_encoder()
        facts[backend] = {"cache": cache, "load_s": round(time.perf_counter() - started, 1)}
        facts[backend]["model_mb"] = encoder_megabytes(backend)
        vectors[backend] = (embeddings.encode_images(pictures, batch_size=32), embeddings.encode_texts(TEXTS))
        alone = np.stack([embeddings.encode_images([p])[0] for p in pictures[:10]])
        facts[backend]["batch1_cosine_min"] = round(float(np.sum(alone * vectors[backend][0][:10], axis=1).min()), 5)
    for backend in backends:
        for kind, index in (("image", 0), ("text", 1)):
            cosines = np.sum(vectors[backend][index] * vectors["torch"][index], axis=1)
            facts[backend][f"{kind}_cosine_mean"] = round(float(cosines.mean()), 5)
            facts[backend][f"{kind}_cosine_min"] = round(float(cosines.min()), 5)
    return facts


class OthersMeter:
    """How many cores other processes used while a measurement ran (/proc/stat's busy time less ours).

    The machine is shared: a batch that ran while someone else's tests took a core is not this
    backend's speed. Linux only; elsewhere it reports 0.
    """

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK")

    def _busy(self) -> float:
        try:
            with open("/proc/stat") as fh:
                values = [int(v) for v in fh.readline().split()[1:9]]
        except OSError:
            return 0.0
        # user nice system idle iowait irq softirq steal: all but idle and iowait is someone's work.
        return (sum(values) - values[3] - values[4]) / self.tick

    def start(self) -> None:
        self.wall, self.own, self.busy = time.perf_counter(), sum(os.times()[:2]), self._busy()

    def stop(self) -> float:
        wall = time.perf_counter() - self.wall
        own = sum(os.times()[:2]) - self.own
        return max(0.0, (self._busy() - self.busy - own) / wall) if self.busy else 0.0


def timing(backend: str, *, batches: int, queries: int) -> dict:
    """Images/s per batch of 32 and milliseconds per query, in a process that runs only this backend."""
    from encoders import embeddings, onnx_backend
    from tests.factories import photo

    use(backend)
    encoder = embeddings.get_image_encoder()
    features = encoder.preprocess([photo(seed) for seed in range(32)])
    if backend == "torch":
        import torch

        def run() -> None:
            with torch.inference_mode():
                encoder.forward(dict(features))

        threads = torch.get_num_threads()
    else:

        def run() -> None:
            encoder.forward(features)

        threads = onnx_backend.default_threads()
    run()  # warm-up
    meter = OthersMeter()
    rates, others = [], []
    for _ in range(batches):
        meter.start()
        started = time.perf_counter()
        run()
        rates.append(32 / (time.perf_counter() - started))
        others.append(meter.stop())
    for query in QUERIES:  # warm-up
        embeddings.encode_text(query)
    ms = []
    meter.start()
    for i in range(queries):
        started = time.perf_counter()
        embeddings.encode_text(QUERIES[i % len(QUERIES)])
        ms.append((time.perf_counter() - started) * 1000)
    return {"rates": rates, "others": others, "ms": ms, "others_queries": meter.stop(), "threads": threads}


def child(*arguments: str) -> dict:
    """Run this script in a fresh process for one measurement; its last stdout line is the JSON answer."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.backends", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(arguments)} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Runs:
    """What the timing processes of one backend measured."""

    rates: list[list[float]] = field(default_factory=list)  # images/s of each batch, per process
    others: list[float] = field(default_factory=list)  # cores other processes used during each batch
    others_queries: list[float] = field(default_factory=list)  # the same during each process's queries
    query_ms: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)  # the load average as each process started
    threads: int = 0

    def add(self, answer: dict, *, load: float) -> None:
        self.rates.append(answer["rates"])
        self.others.extend(answer["others"])
        self.others_queries.append(answer["others_queries"])
        self.query_ms.extend(answer["ms"])
        self.loads.append(load)
        self.threads = answer["threads"]

    @property
    def batch_rates(self) -> list[float]:
        return [rate for batch in self.rates for rate in batch]

    def quiet_rate(self) -> float | None:
        """Median images/s of the batches during which other processes used under a fifth of a core."""
        quiet = [rate for rate, other in zip(self.batch_rates, self.others, strict=True) if other < QUIET_CORES]
        return statistics.median(quiet) if quiet else None


def measure_all(args: argparse.Namespace) -> tuple[dict[str, dict], dict[str, Runs]]:
    """The agreement process, then ``--rounds`` timing processes per backend."""
    facts = child("--child", "agreement", "--models", str(args.models))
    runs = {backend: Runs() for backend in BACKENDS}
    for round_ in range(args.rounds):
        # Each round runs every backend once, in a rotating order, so drifting load falls on all alike.
        for backend in BACKENDS[round_ % 3 :] + BACKENDS[: round_ % 3]:
            load = round(os.getloadavg()[0], 2)  # other processes' share of the 2 cores
            answer = child(
                "--child", "timing", backend, "--models", str(args.models),
                "--batches", str(args.batches), "--queries", str(args.queries),
            )  # fmt: skip
            runs[backend].add(answer, load=load)
    return facts, runs


def backend_line(backend: str, runs: Runs, torch: Runs) -> dict:
    rate, torch_rate = statistics.median(runs.batch_rates), statistics.median(torch.batch_rates)
    quiet, torch_quiet = runs.quiet_rate(), torch.quiet_rate()
    ms = sorted(runs.query_ms)
    return {
        "backend": backend,
        "images_per_s": round(rate, 2),
        "vs_torch": round(rate / torch_rate, 2),
        "images_per_s_by_process": [round(statistics.median(batch), 1) for batch in runs.rates],
        # The fastest batch, and the batches that had the machine to themselves.
        "images_per_s_best": round(max(runs.batch_rates), 2),
        "images_per_s_quiet": _round(quiet),
        "vs_torch_quiet": _round(quiet / torch_quiet) if quiet and torch_quiet else None,
        "quiet_batches": f"{sum(o < QUIET_CORES for o in runs.others)}/{len(runs.others)}",
        "others_cores_batches": round(statistics.mean(runs.others), 2),
        "others_cores_queries": round(statistics.mean(runs.others_queries), 2),
        "loadavg_by_process": runs.loads,
        "query_p50_ms": round(statistics.median(ms), 2),
        "query_p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
        "queries": len(ms),
    }


def arguments() -> argparse.Namespace:
    parser = argument_parser(__doc__, __spec__.name)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per backend, alternating")
    parser.add_argument("--batches", type=int, default=6, help="timed batches of 32 per process")
    parser.add_argument("--queries", type=int, default=20, help="timed queries per process (after warm-up)")
    parser.add_argument("--models", type=Path, default=FULL_SIZE_ENCODERS, help="the full-size stand-in encoders")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # agreement | timing BACKEND
    return parser.parse_args()


def main() -> None:
    args = arguments()
    encoders = full_size_encoders(args.models)
    if args.child:  # one measurement, in a process of its own
        setup_django(DEBUG="1", **encoders)
        if args.child[0] == "agreement":
            print(json.dumps(agreement(BACKENDS)))
        else:
            print(json.dumps(timing(args.child[1], batches=args.batches, queries=args.queries)))
        return
    load_start = os.getloadavg()
    facts, runs = measure_all(args)
    common = {"batch_size": 32, "rounds": args.rounds, "cpu_count": os.cpu_count()}
    common["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
    common["loadavg_start"] = [round(x, 2) for x in load_start]
    common["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    for backend in BACKENDS:
        line = backend_line(backend, runs[backend], runs["torch"]) | facts[backend]
        line |= {"threads": runs[backend].threads, "onnx_spinning": None if backend == "torch" else _spinning()}
        print(json.dumps(line | common, ensure_ascii=False))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _spinning() -> bool:
    from encoders import onnx_backend

    return onnx_backend.default_spinning()


if __name__ == "__main__":
    main()
