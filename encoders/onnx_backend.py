"""The ONNX Runtime backends of encoders/embeddings.py: export, cache and run the configured models.

``EMBEDDING_BACKEND=onnx`` runs an fp32 export of a model with ONNX Runtime; ``onnx-int8`` runs a
copy whose MatMul weights and embedding tables are dynamically quantised to int8. Both are made
here, offline, from the model the settings name: ``torch.onnx.export`` of the whole
sentence-transformers module stack (inputs to the final sentence embedding), then
``onnxruntime.quantization.quantize_dynamic``. An export is checked against the torch model on
probe inputs before it is used, and cached under ``ONNX_CACHE_DIR`` in a folder keyed by a
fingerprint of the source model, so a changed model is exported again.

Preprocessing stays in Python with the model's own processor (saved beside the export): the runtime
needs neither the torch weights nor sentence-transformers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("onnx", "onnx-int8")
# Bump when what _write_export produces changes: every cached export is then rebuilt.
EXPORT_VERSION = 1
MODEL_FILE = "model.onnx"
META_FILE = "meta.json"  # written last inside the export folder; its presence means "complete"
PREPROCESSOR_DIR = "preprocessor"
OPSET = 17
# MatMul carries the compute; Gather the embedding tables (most of the text model's bytes). Conv is
# left in fp32: ViT's only Conv is the small patch embedding, and ConvInteger is slow on CPU.
QUANTIZED_OPS = ["MatMul", "Gather"]
# Worst per-row cosine to the torch model on the probe inputs below which an export is refused.
# fp32 differs from torch by float rounding only; int8 is an approximation (see bench/README.md).
MIN_PROBE_COSINE = {"onnx": 0.999, "onnx-int8": 0.9}
# A temporary export folder older than this belongs to a process that died while exporting.
STALE_WORK_SECONDS = 3600

_PROBE_TEXTS = [
    "a photo of a cat sleeping on a sofa",
    "雪山",
    "ein roter Hund am Strand, im Sommer, bei Sonnenuntergang",
    "صورة قطة نائمة على الأريكة",
]


class OnnxUnavailable(RuntimeError):
    """An ONNX backend cannot be used for a model (export failed, or it does not match torch)."""


class OnnxEncoder:
    """An exported model and its preprocessing: what the ONNX backends use instead of a SentenceTransformer."""

    def __init__(self, *, folder: Path, threads: int | None = None, spinning: bool | None = None):
        import onnxruntime as ort

        self.folder = Path(folder)
        self.meta: dict[str, Any] = json.loads((self.folder / META_FILE).read_text())
        self.modality: str = self.meta["modality"]
        self.dimensions: int = self.meta["dimensions"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        if spinning is None:
            spinning = default_spinning()
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.session = ort.InferenceSession(str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self._input_types = {i.name: _NUMPY_TYPES[i.type] for i in self.session.get_inputs()}
        preprocessor = self.folder / PREPROCESSOR_DIR
        if self.modality == "image":
            from transformers import AutoImageProcessor

            self.processor = AutoImageProcessor.from_pretrained(preprocessor)
        else:
            from transformers import AutoTokenizer

            self.processor = AutoTokenizer.from_pretrained(preprocessor)
        # A fast tokenizer raises "Already borrowed" when two threads call it at once.
        self._processor_lock = threading.Lock()

    def get_embedding_dimension(self) -> int:
        return self.dimensions

    def preprocess(self, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
        """Model inputs for a batch of RGB PIL images or strings, as sentence-transformers makes them."""
        if self.modality == "image":
            features = self.processor(images=list(inputs), return_tensors="np")
        else:
            max_length = self.meta.get("max_length")
            with self._processor_lock:
                features = self.processor(
                    list(inputs),
                    padding=True,
                    truncation="longest_first" if max_length else False,
                    max_length=max_length,
                    return_tensors="np",
                )
        return {name: np.ascontiguousarray(features[name], dtype=kind) for name, kind in self._input_types.items()}

    def forward(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Embeddings, not normalised, for inputs made by :meth:`preprocess`."""
        return self.session.run(None, {name: features[name] for name in self._input_types})[0]

    def encode(self, inputs: Sequence[Any], *, batch_size: int) -> np.ndarray:
        """L2-normalised float32 vectors, one row per input, in the order given."""
        order = list(range(len(inputs)))
        if self.modality == "text":  # batches of similar lengths pad less (sentence-transformers does the same)
            order.sort(key=lambda i: -len(inputs[i]))
        chunks = [
            self.forward(self.preprocess([inputs[i] for i in order[start : start + batch_size]]))
            for start in range(0, len(order), batch_size)
        ]
        vectors = np.concatenate(chunks).astype(np.float32, copy=False)[np.argsort(order)]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def default_threads() -> int:
    """OMP_NUM_THREADS when set (torch obeys it too), else the cores this process may run on."""
    try:
        threads = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        threads = 0
    if threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_spinning() -> bool:
    """Spin-wait between operators only when OMP_WAIT_POLICY=ACTIVE asks for it.

    Spinning bought 1-2% images/s on 2 cores (bench/README.md) while burning the CPU that decoding
    workers and other requests need, the same trade embed_images makes for torch with PASSIVE.
    """
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE"


def load(
    *,
    name: str,
    modality: str,
    backend: str,
    cache_dir: Path,
    torch_model: Callable[[], Any],
) -> OnnxEncoder:
    """The ONNX encoder for the model ``name``, exported first when the cache has no current export.

    ``torch_model`` loads the SentenceTransformer; it is only called to export (or to download a hub
    model that is not in the local cache yet).
    """
    if backend not in BACKENDS:
        raise OnnxUnavailable(f"unknown ONNX backend {backend!r}")
    source = source_folder(name=name)
    load_model = torch_model
    if source is None:  # a hub model not downloaded yet: the torch loader fetches it
        model = torch_model()
        load_model = lambda: model  # noqa: E731
        source = source_folder(name=name)
        if source is None:
            raise OnnxUnavailable(f"cannot find the files of {name!r} on disk; name a local folder instead")
    target = export_folder(cache_dir=Path(cache_dir), name=name, source=source, modality=modality, backend=backend)
    if not (target / META_FILE).exists():
        _export_once(load_model=load_model, target=target, modality=modality, backend=backend)
    return OnnxEncoder(folder=target)


def source_folder(*, name: str) -> Path | None:
    """The folder holding the model ``name``: the path itself, or its snapshot in the Hugging Face cache."""
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        return path.resolve()
    from huggingface_hub import snapshot_download

    # sentence-transformers looks bare names up under its own organisation first.
    repos = [name] if "/" in name else [f"sentence-transformers/{name}", name]
    for repo in repos:
        try:
            return Path(
                snapshot_download(repo, local_files_only=True, cache_dir=os.environ.get("SENTENCE_TRANSFORMERS_HOME"))
            )
        except Exception:  # not cached, or not a valid repository name
            continue
    return None


def fingerprint(*, folder: Path) -> str:
    """sha256 over every file's name, size and modification time: changes whenever the model is rewritten.

    Cheap enough for every process start (no reading of gigabytes of weights); a touched but unchanged
    file costs one needless export.
    """
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    for path in files:
        stat = path.stat()  # follows the Hugging Face cache's links to their blobs
        digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def export_folder(*, cache_dir: Path, name: str, source: Path, modality: str, backend: str) -> Path:
    """Where the export of ``source`` for ``backend`` lives: named by everything that shapes its content."""
    key = {
        "export_version": EXPORT_VERSION,
        "source": fingerprint(folder=source),
        "modality": modality,
        "backend": backend,
        # The exporter, the quantiser and the preprocessing code all live in these packages.
        "versions": {
            pkg: _version(pkg) for pkg in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime")
        },
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return cache_dir / f"{_stem(name=name, backend=backend)}-{digest[:16]}"


def _stem(*, name: str, backend: str) -> str:
    """The part of an export's folder name shared by all its versions (so stale ones can be pruned)."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rstrip("/").rsplit("/", 1)[-1])[:60] or "model"
    return f"{label}-{hashlib.sha256(name.encode()).hexdigest()[:8]}-{backend}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def _export_once(*, load_model: Callable[[], Any], target: Path, modality: str, backend: str) -> None:
    """Export into ``target`` unless another process does it first.

    A file lock keeps the processes of one machine (gunicorn workers starting together) from all
    exporting at once; the atomic rename in :func:`publish` is what keeps the cache correct without it.
    """
    from filelock import FileLock, Timeout

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(target.parent / f".{target.name}.lock"), timeout=1800):
            if not (target / META_FILE).exists():
                export(load_model=load_model, target=target, modality=modality, backend=backend)
    except Timeout:
        export(load_model=load_model, target=target, modality=modality, backend=backend)


def export(*, load_model: Callable[[], Any], target: Path, modality: str, backend: str) -> None:
    """Export the SentenceTransformer that ``load_model`` returns into ``target``, checked against it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    work.mkdir()
    try:
        model = load_model()
        try:
            _write_export(model=model, work=work, modality=modality, backend=backend)
        except OnnxUnavailable:
            raise
        except Exception as exc:  # the exporter and the quantiser fail in many ways; all mean "cannot use this backend"
            raise OnnxUnavailable(f"exporting to ONNX failed: {exc.__class__.__name__}: {exc}") from exc
        publish(work=work, target=target)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already after a successful publish
    _prune(target)


def publish(*, work: Path, target: Path) -> None:
    """Move a finished export into place atomically; if another process got there first, keep theirs."""
    try:
        os.replace(work, target)
    except OSError:
        if (target / META_FILE).exists():
            return  # a complete export of the same key: identical in every way that matters
        shutil.rmtree(target, ignore_errors=True)  # an incomplete folder left by hand
        os.replace(work, target)


def _prune(target: Path) -> None:
    """Remove older exports of the same model and backend, and work folders of processes that died."""
    stem = target.name.rsplit("-", 1)[0]
    for sibling in target.parent.iterdir():
        try:
            if sibling.name.startswith(f"{stem}-") and sibling != target and sibling.is_dir():
                shutil.rmtree(sibling, ignore_errors=True)
            elif sibling.name.startswith(f".{stem}-") and not sibling.name.startswith(f".{target.name}."):
                if sibling.name.endswith(".lock"):
                    sibling.unlink()
                elif time.time() - sibling.stat().st_mtime > STALE_WORK_SECONDS:
                    shutil.rmtree(sibling, ignore_errors=True)
        except OSError:  # another process pruning at the same time
            continue


def _write_export(*, model: Any, work: Path, modality: str, backend: str) -> None:
    """Export ``model`` (a SentenceTransformer) into ``work``: the graph, its processor and meta.json, checked."""
    probe, processor = _probe_and_processor(model, modality=modality)
    # Traced on two inputs of different lengths, so the text graph keeps its padding-mask path.
    sample = model.preprocess(probe[:2])
    fp32 = work / (MODEL_FILE if backend == "onnx" else "model-fp32.onnx")
    names = _export_graph(model, sample=sample, modality=modality, path=fp32)
    if backend == "onnx-int8":
        _quantize(fp32, path=work / MODEL_FILE)
        fp32.unlink()
    processor.save_pretrained(str(work / PREPROCESSOR_DIR))

    meta = {
        "export_version": EXPORT_VERSION,
        "modality": modality,
        "backend": backend,
        "inputs": names,
        "max_length": model.max_seq_length if modality == "text" else None,
        "dimensions": int(model.get_embedding_dimension() or 0),
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    # Written before the check, which loads the export as the runtime will (meta.json included).
    (work / META_FILE).write_text(json.dumps(meta, indent=2))
    worst, dimensions = _check_against_torch(model, work=work, probe=probe, backend=backend)
    meta["dimensions"] = dimensions
    meta["probe_cosine_min"] = round(worst, 6)
    (work / META_FILE).write_text(json.dumps(meta, indent=2))


def _probe_and_processor(model: Any, *, modality: str) -> tuple[list[Any], Any]:
    """The probe inputs for ``modality`` and the first module's processor, which the runtime preprocesses with."""
    module = model[0]
    if modality == "image":
        probe: list[Any] = _probe_images()
        processor = getattr(module, "processor", None)
        processor = getattr(processor, "image_processor", processor)
    else:
        probe = list(_PROBE_TEXTS)
        processor = getattr(module, "tokenizer", None)
    if processor is None or not hasattr(processor, "save_pretrained"):
        raise OnnxUnavailable(f"the model's first module ({type(module).__name__}) has no processor to save")
    return probe, processor


def _export_graph(model: Any, *, sample: dict[str, Any], modality: str, path: Path) -> list[str]:
    """Write the whole module stack as one fp32 ONNX graph to ``path``; returns its input names."""
    import torch

    names = [key for key, value in sample.items() if isinstance(value, torch.Tensor)]
    axes = {0: "batch", 1: "sequence"} if modality == "text" else {0: "batch"}

    class Stack(torch.nn.Module):
        """The whole module stack as one graph: named input tensors -> sentence embedding."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            features = dict(zip(names, tensors, strict=True))
            features["modality"] = modality
            return self.model(features)["sentence_embedding"]

    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated and that traced branches are fixed;
        # it needs no extra packages, and the probe check catches a trace that does not generalise.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Stack(),
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={**{name: axes for name in names}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return names


def _quantize(fp32: Path, *, path: Path) -> None:
    """Write an int8 copy of the graph ``fp32`` to ``path`` (QUANTIZED_OPS only)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger("Please consider to run pre-processing"):  # advice for static quantisation
        quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, op_types_to_quantize=QUANTIZED_OPS)


def _check_against_torch(model: Any, *, work: Path, probe: list[Any], backend: str) -> tuple[float, int]:
    """The worst cosine of the export to the torch model on ``probe``, and its dimensions; OnnxUnavailable if too low."""
    # The check that matters: the runtime path (saved processor + ONNX Runtime) against the torch model.
    encoder = OnnxEncoder(folder=work)
    got = encoder.encode(probe, batch_size=len(probe))  # a batch size the trace did not see
    want = model.encode(probe, batch_size=len(probe), convert_to_numpy=True, normalize_embeddings=True)
    worst = float(np.min(np.sum(got * want, axis=1)))
    if worst < MIN_PROBE_COSINE[backend]:
        raise OnnxUnavailable(
            f"the {backend} export does not reproduce the model: cosine {worst:.4f} to the torch model on "
            f"probe inputs, below {MIN_PROBE_COSINE[backend]}"
        )
    return worst, int(got.shape[1])


def _probe_images() -> list[Any]:
    """A few deterministic RGB pictures of different sizes and aspect ratios (resize and crop both run)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for width, height in ((320, 240), (180, 300), (64, 64)):
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
        noise = rng.normal(0, 30, (height, width, 3))
        images.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB"))
    return images


@contextlib.contextmanager
def _quiet_root_logger(prefix: str) -> Iterator[None]:
    """Drop the root logger's records starting with ``prefix`` for a while."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(prefix)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
