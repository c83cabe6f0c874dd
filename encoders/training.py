"""Train, from scratch on 2 CPU cores, a small encoder pair that understands the generated world.

    python -m encoders.training --out encoders/trained

writes two SentenceTransformer folders, loaded by the site exactly like the real encoders:

* ``world-image/``: a transformers CLIPModel (vision: 64 px input, 32 px patches, width 256, 4 layers;
  text: width 128, 2 layers) with its CLIPProcessor, like ``clip-ViT-B-32``;
* ``world-text/``: DistilBERT (width 128, 2 layers) + mean Pooling + Dense to 512, like
  ``sentence-transformers/clip-ViT-B-32-multilingual-v1``.

How (each choice is what made minutes of 2-core CPU enough; encoders/world.py has the world):

* Pictures are rendered small (128 px wide, in their own aspect ratio, with their JPEG/WebP
  artefacts) and squeezed to 64x64 exactly as the saved image processor does; objects sit in the
  picture's 2x2 cells, so each 32 px patch sees at most one object, and a linear patch embedding
  plus 4 attention layers learns kinds, colours and counts fast.
* Multi-positive contrastive loss: every picture in the batch that fits a caption (the caption's
  label tokens are a subset of the picture's) is a positive, not only the picture it was drawn for.
* Shared attribute prototypes (kind, colour, count, background, colour+kind) scored with a fixed
  scale on the normalised embeddings of all three towers: text and image vectors meet at the same
  prototypes, and the colour+kind prototype pulls alike pictures together (image-to-image search).
* Image-to-image: pictures of the same kind and colour in a batch are each other's positives
  (a supervised contrastive term), so background and count do not outweigh them.
* The text twin is trained in the same loop, against the (detached) image vectors with the same
  losses, plus a cosine pull towards the CLIP text tower's vector for the same caption (the way the
  real multilingual model was distilled from CLIP's text tower). Training it directly against the
  image vectors is what the site needs (twin queries against CLIP image vectors); the distillation
  term keeps the two text towers interchangeable.

Evaluation uses a held-out world (another seed: pictures never trained on) written to files by
``make_world`` and read back through ``SentenceTransformer(folder)``, exact cosine search in numpy.
Text-to-image relevance: the query's label tokens are a subset of the picture's; image-to-image:
same colour and kind (encoders/world.py); mAP@10 as defined in encoders/metrics.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from encoders import world
from encoders.metrics import average_precision_at_k, rank, recall_at_k

IMAGE_SIZE = 64
PATCH = 32
RENDER_WIDTH = 128
DIMENSIONS = 512
ALIKE_WEIGHT = 1.5
HEAD_SCALE = 12.0  # fixed: a learnt scale lets the heads win by growing it instead of shaping the space
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # OpenAI CLIP's, as the processor uses
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


# -------------------------------------------------------------------------------------------- data


def _small_picture(spec: world.Spec) -> np.ndarray:
    """The picture as the encoder sees it: rendered small, degraded like its file, squeezed to 64x64."""
    from PIL import Image

    height = max(8, round(RENDER_WIDTH * spec.height / spec.width))
    image = world.degrade(spec, world.render(spec, size=(RENDER_WIDTH, height)))
    # Same resize as the saved CLIPImageProcessor (PIL bicubic, whole picture, no crop).
    return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC), np.uint8)


def render_pictures(specs: list[world.Spec], workers: int) -> np.ndarray:
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pictures = pool.map(_small_picture, specs, chunksize=128)
    else:
        pictures = [_small_picture(spec) for spec in specs]
    return np.stack(pictures)


def to_pixels(pictures: np.ndarray):
    import torch

    x = (pictures.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def attribute_ids(specs: list[world.Spec]) -> np.ndarray:
    """(n, 4) ids: kind, colour, count - 1, background."""
    return np.array(
        [
            (
                world.KINDS.index(s.kind),
                world.COLOURS.index(s.colour),
                s.count - 1,
                world.BACKGROUNDS.index(s.background),
            )
            for s in specs
        ],
        np.int64,
    )


def caption_ids(tokens: tuple[str, ...]) -> tuple[int, int, int, int]:
    """The attributes a caption asserts as ids, -1 where it says nothing."""
    kind = world.KINDS.index(tokens[0])
    colour = count = background = -1
    for token in tokens[1:]:
        if token in world.COLOURS:
            colour = world.COLOURS.index(token)
        elif token.startswith("count:"):
            count = int(token.split(":")[1]) - 1
        elif token.startswith("background:"):
            background = world.BACKGROUNDS.index(token.split(":")[1])
    return kind, colour, count, background


def build_tokenizer(seed: int):
    """A WordPiece tokenizer whose vocabulary is every word and character of the world's captions.

    The vocabulary is built, sorted, from the captions rather than learnt by the tokenizers trainer:
    its merges break ties differently from run to run, and the training must be deterministic.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from encoders.standins import bert_tokenizer

    rng = np.random.default_rng(seed)
    corpus = [q.text for q in world.queries(seed)]
    corpus += [world.caption(spec, rng)[0] for spec in world.draw_specs(6000, seed)]
    # No accent stripping: it would fold Russian yo into ye and drop Japanese dakuten (ボ -> ホ).
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False, handle_chinese_chars=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = set()
    for text in corpus:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({ch for word in words for ch in word})
    tokens = [*SPECIAL, *sorted(words), *(c for c in characters if c not in words), *(f"##{c}" for c in characters)]
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(tokens)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    return bert_tokenizer(tok, model_max_length=77)


# ------------------------------------------------------------------------------------------ models


def build_encoders(tokenizer):
    import torch
    from transformers import CLIPConfig, CLIPModel, DistilBertConfig, DistilBertModel

    config = CLIPConfig(
        text_config=dict(
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            # Not 2: CLIP then pools at the first [SEP] instead of at the largest token id.
            eos_token_id=tokenizer.sep_token_id,
        ),
        vision_config=dict(
            hidden_size=256,
            intermediate_size=1024,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=IMAGE_SIZE,
            patch_size=PATCH,
        ),
        projection_dim=DIMENSIONS,
    )
    clip = CLIPModel(config).float()
    twin_config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=128,
        hidden_dim=512,
        n_layers=2,
        n_heads=4,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    twin = DistilBertModel(twin_config).float()
    dense = torch.nn.Linear(128, DIMENSIONS, bias=False)
    return clip, twin, dense


class Heads:
    """Shared attribute prototypes; logits are a fixed scale times cosine to each prototype."""

    def __init__(self):
        import torch

        sizes = (len(world.KINDS), len(world.COLOURS), len(world.COUNTS), len(world.BACKGROUNDS))
        self.sizes = sizes
        self.prototypes = [torch.nn.Parameter(torch.randn(n, DIMENSIONS) * 0.05) for n in (*sizes, sizes[0] * sizes[1])]

    def loss(self, embeddings, ids):
        """ids: (n, 4) kind, colour, count, background with -1 for unknown; plus colour+kind when both known."""
        import torch.nn.functional as F

        kinds, colours = ids[:, 0], ids[:, 1]
        joint = (kinds * self.sizes[1] + colours).where(colours >= 0, -1)
        targets = [ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3], joint]
        total = embeddings.new_zeros(())
        for prototypes, target in zip(self.prototypes, targets, strict=True):
            logits = HEAD_SCALE * embeddings @ F.normalize(prototypes, dim=-1).T
            if (target >= 0).any():
                total = total + F.cross_entropy(logits, target, ignore_index=-1)
        return total


def multi_positive_loss(logits, positives):
    """Cross-entropy against a uniform target over all positives of each row (rows without any skipped)."""
    weights = positives / positives.sum(1, keepdim=True).clamp(min=1)
    has = positives.any(1)
    return -(weights * logits.log_softmax(1)).sum(1)[has].mean()


def clip_image(clip, pixels):
    import torch.nn.functional as F

    return F.normalize(clip.visual_projection(clip.vision_model(pixel_values=pixels).pooler_output), dim=-1)


def clip_text(clip, batch):
    import torch.nn.functional as F

    out = clip.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
    return F.normalize(clip.text_projection(out), dim=-1)


def twin_text(twin, dense, batch):
    """DistilBERT + mean over non-padding tokens ([CLS]/[SEP] included, as sentence_transformers' Pooling) + Dense."""
    import torch.nn.functional as F

    hidden = twin(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(dense(pooled), dim=-1)


# -------------------------------------------------------------------------------------------- train


def train(args) -> tuple[object, object, object, object, dict]:
    import torch

    _seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tokenizer = build_tokenizer(args.seed)
    specs = world.draw_specs(args.train_count, args.train_seed)
    pictures = render_pictures(specs, args.workers)
    pixels = to_pixels(pictures)
    ids = torch.from_numpy(attribute_ids(specs))
    data_s = time.perf_counter() - started
    print(f"training world: {len(specs)} pictures (seed {args.train_seed}) rendered in {data_s:.0f} s", flush=True)

    clip, twin, dense = build_encoders(tokenizer)
    heads = Heads()
    params = [*clip.parameters(), *twin.parameters(), *dense.parameters(), *heads.prototypes]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup))) * 0.98 + 0.02

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    rng = np.random.default_rng(args.seed)
    order = np.empty(0, np.int64)
    loop_started, loop_cpu = time.perf_counter(), time.process_time()
    clip.train()
    twin.train()
    for step in range(args.steps):
        if len(order) < args.batch:
            order = np.concatenate([order, rng.permutation(len(specs))])
        index, order = order[: args.batch], order[args.batch :]
        texts, cap_ids = [], []
        for i in index:
            text, _language, tokens = world.caption(specs[i], rng)
            texts.append(text)
            cap_ids.append(caption_ids(tokens))
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        cap = torch.tensor(cap_ids)
        img = ids[torch.from_numpy(index)]
        positives = torch.ones(len(index), len(index), dtype=torch.bool)
        for a in range(4):
            known = (cap[:, a] >= 0).unsqueeze(1)
            positives &= ~known | (cap[:, a].unsqueeze(1) == img[:, a].unsqueeze(0))
        positives = positives.float()

        image_vectors = clip_image(clip, pixels[torch.from_numpy(index)])
        text_vectors = clip_text(clip, batch)
        twin_vectors = twin_text(twin, dense, batch)
        scale = clip.logit_scale.exp().clamp(max=100)
        logits = scale * text_vectors @ image_vectors.T
        loss_clip = multi_positive_loss(logits, positives) + multi_positive_loss(logits.T, positives.T)
        twin_logits = scale.detach() * twin_vectors @ image_vectors.detach().T
        loss_twin = multi_positive_loss(twin_logits, positives)
        loss_heads = heads.loss(image_vectors, img) + heads.loss(text_vectors, cap) + heads.loss(twin_vectors, cap)
        loss_distil = (1 - (twin_vectors * text_vectors.detach()).sum(-1)).mean() * 4
        # Alike pictures (same kind and colour) are each other's positives, whatever their background
        # and count: without this, background (the easiest attribute) dominated image-to-image search.
        alike = (img[:, 0].unsqueeze(1) == img[:, 0].unsqueeze(0)) & (img[:, 1].unsqueeze(1) == img[:, 1].unsqueeze(0))
        alike.fill_diagonal_(False)
        self_logits = (scale * image_vectors @ image_vectors.T).masked_fill(
            torch.eye(len(index), dtype=torch.bool), -1e4
        )
        loss_alike = multi_positive_loss(self_logits, alike.float()) * ALIKE_WEIGHT
        loss = loss_clip + loss_twin + loss_heads + loss_distil + loss_alike
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if step % 20 == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - loop_started
            print(
                f"step {step:4d}/{args.steps}  loss {loss.item():.3f} (clip {loss_clip.item():.3f} twin "
                f"{loss_twin.item():.3f} heads {loss_heads.item():.3f} distil {loss_distil.item():.3f} "
                f"alike {loss_alike.item():.3f})  "
                f"scale {scale.item():.1f}  {elapsed:.0f} s (cpu {time.process_time() - loop_cpu:.0f} s)",
                flush=True,
            )
    timing = {
        "data_s": data_s,
        "loop_s": time.perf_counter() - loop_started,
        "loop_cpu_s": time.process_time() - loop_cpu,
    }
    timing["total_s"] = time.perf_counter() - started
    timing["threads"] = args.threads
    clip.eval()
    twin.eval()
    return tokenizer, clip, twin, dense, timing


# --------------------------------------------------------------------------------------------- save


def save(out: Path, tokenizer, clip, twin, dense) -> tuple[Path, Path]:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    out.mkdir(parents=True, exist_ok=True)
    image_dir, text_dir = out / "world-image", out / "world-text"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "clip"
        clip.float().save_pretrained(raw, safe_serialization=True)
        # The whole picture is squeezed to 64x64, not center-cropped: the world's pictures are up to
        # 16:9, and a crop would cut off the objects in the outer cells that captions count.
        processor = CLIPProcessor(
            image_processor=CLIPImageProcessorPil(
                size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                do_center_crop=False,
            ),
            # A copy: a processor marks its tokenizer as part of it, and the text twin's must stand alone.
            tokenizer=copy.deepcopy(tokenizer),
        )
        processor.save_pretrained(raw)
        shutil.rmtree(image_dir, ignore_errors=True)
        SentenceTransformer(modules=[Transformer(str(raw))], device="cpu").save(str(image_dir))

        raw_text = Path(tmp) / "twin"
        twin.float().save_pretrained(raw_text, safe_serialization=True)
        tokenizer.save_pretrained(raw_text)
        transformer = Transformer(str(raw_text), max_seq_length=64)
        pooling = Pooling(twin.config.dim, "mean")
        head = Dense(twin.config.dim, DIMENSIONS, bias=False, activation_function=torch.nn.Identity())
        with torch.no_grad():
            head.linear.weight.copy_(dense.weight)
        shutil.rmtree(text_dir, ignore_errors=True)
        SentenceTransformer(modules=[transformer, pooling, head], device="cpu").save(str(text_dir))
    for folder in (image_dir, text_dir):
        for stale in folder.rglob("README.md"):
            stale.unlink()  # sentence_transformers' generated model cards; encoders/trained/README.md says it all
    return image_dir, text_dir


# ----------------------------------------------------------------------------------------- evaluate


def evaluate(image_dir: Path, text_dir: Path, count: int, seed: int) -> dict:
    """Held-out figures, through SentenceTransformer(folder) on pictures written as files."""
    from PIL import Image
    from sentence_transformers import SentenceTransformer

    image_encoder = SentenceTransformer(str(image_dir), device="cpu")
    text_encoder = SentenceTransformer(str(text_dir), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        world.make_world(tmp, count=count, seed=seed)
        labels = world.read_labels(tmp)
        queries = world.read_queries(tmp)
        paths = list(labels)
        pictures = []
        for path in paths:
            with Image.open(Path(tmp) / path) as image:
                pictures.append(image.convert("RGB"))
    image_vectors = image_encoder.encode(pictures, batch_size=128, normalize_embeddings=True)
    picture_labels = [set(labels[p]) for p in paths]
    results: dict = {"pictures": len(paths), "queries": len(queries), "languages": {}}
    for name, encoder in (("twin", text_encoder), ("clip_text", image_encoder)):
        vectors = encoder.encode([q.text for q in queries], batch_size=256, normalize_embeddings=True)
        top = rank(vectors, image_vectors, 10)
        per_language: dict[str, list] = {}
        for query, row in zip(queries, top, strict=True):
            wanted = set(query.labels)
            total = sum(wanted <= pl for pl in picture_labels)
            relevance = [wanted <= picture_labels[j] for j in row]
            per_language.setdefault(query.language, []).append(
                (
                    average_precision_at_k(relevance, 10, total),
                    recall_at_k(relevance, 1, total),
                    recall_at_k(relevance, 10, total),
                )
            )
        results[name] = {
            language: [float(np.mean(column)) for column in zip(*rows, strict=True)]
            for language, rows in per_language.items()
        }
    tokens = [world.image_relevance_token(labels[p]) for p in paths]
    top = rank(image_vectors, image_vectors, 10, exclude_self=True)
    aps = []
    for i, row in enumerate(top):
        total = sum(t == tokens[i] for t in tokens) - 1
        if total:
            aps.append(average_precision_at_k([tokens[j] == tokens[i] for j in row], 10, total))
    results["image_to_image_map10"] = float(np.mean(aps))
    return results


def table(results: dict, timing: dict) -> str:
    lines = [
        f"held-out world: {results['pictures']} pictures, {results['queries']} queries (8 languages)",
        "",
        "| language | text->image mAP@10 | recall@1 | recall@10 | (CLIP text tower mAP@10) |",
        "|---|---|---|---|---|",
    ]
    twin, clip = results["twin"], results["clip_text"]
    for language in world.LANGUAGES:
        m, r1, r10 = twin[language]
        lines.append(f"| {language} | {m:.3f} | {r1:.3f} | {r10:.3f} | {clip[language][0]:.3f} |")
    means = [float(np.mean([twin[lang][c] for lang in world.LANGUAGES])) for c in range(3)]
    clip_mean = float(np.mean([clip[lang][0] for lang in world.LANGUAGES]))
    lines.append(f"| **mean** | **{means[0]:.3f}** | {means[1]:.3f} | {means[2]:.3f} | {clip_mean:.3f} |")
    lines += [
        "",
        f"image->image mAP@10 (alike = same colour and kind): **{results['image_to_image_map10']:.3f}**",
        "",
        f"training wall time: {timing['total_s'] / 60:.1f} min ({timing['data_s']:.0f} s rendering the training "
        f"world, {timing['loop_s']:.0f} s training, which used {timing['loop_cpu_s']:.0f} s of CPU on "
        f"{timing['threads']} thread(s): the rest is waiting for cores other work held)",
    ]
    return "\n".join(lines)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m encoders.training", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="encoders/trained", help="where world-image/ and world-text/ go")
    parser.add_argument("--train-count", type=int, default=16000)
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--eval-count", type=int, default=2000)
    parser.add_argument("--eval-seed", type=int, default=2)
    parser.add_argument("--steps", type=int, default=520)
    parser.add_argument("--batch", type=int, default=192)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--seed", type=int, default=0)
    # One thread: on the shared 2-core machine two OpenMP threads spin-wait for each other whenever
    # other work holds a core; measured there, a step took 2.6x longer with 2 threads than with 1.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (at most 2 here)")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering the training world")
    args = parser.parse_args(argv)
    if args.train_seed == args.eval_seed:
        parser.error("the held-out world needs its own seed")
    out = Path(args.out)
    tokenizer, clip, twin, dense, timing = train(args)
    image_dir, text_dir = save(out, tokenizer, clip, twin, dense)
    started = time.perf_counter()
    results = evaluate(image_dir, text_dir, args.eval_count, args.eval_seed)
    report = table(results, timing)
    size = folder_size(image_dir) + folder_size(text_dir)
    print(report)
    print(f"evaluation took {time.perf_counter() - started:.0f} s; encoders: {size / 2**20:.1f} MiB")
    command = "python -m encoders.training " + " ".join(sys.argv[1:] if argv is None else argv)
    (out / "figures.json").write_text(
        json.dumps({"command": command, "timing": timing, "results": results, "bytes": size}, indent=1) + "\n"
    )
    (out / "README.md").write_text(readme(command, report, size))
    return 0


def readme(command: str, report: str, size: int) -> str:
    return f"""# World encoders

Two encoders trained from scratch on the generated picture world of `encoders/world.py`, and on
nothing else: **they understand only that world** (12 kinds of object, 8 colours, 1-3 objects,
6 backgrounds, queries in en, de, fr, es, zh, ja, ar, ru). On real photographs their vectors are
meaningless. They let the site's search be tested end to end, offline, with encoders whose right
answers are known.

* `world-image/`: a transformers CLIPModel (ViT: 64 px input, 32 px patches, width 256, 4 layers;
  text tower: width 128, 2 layers) with its CLIPProcessor, loaded by `SentenceTransformer(folder)`
  like `clip-ViT-B-32`. The image processor squeezes the whole picture to 64x64 (no center crop),
  so objects near the edges of wide pictures are kept. Set `CLIP_IMAGE_MODEL` to this folder.
* `world-text/`: DistilBERT (width 128, 2 layers) + mean pooling + Dense to 512, like
  `sentence-transformers/clip-ViT-B-32-multilingual-v1`, trained into the image encoder's space.
  Set `CLIP_TEXT_MODEL` to this folder.

Both give 512-dimensional vectors (`EMBEDDING_DIMENSIONS=512`); fp32 safetensors,
{size / 2**20:.1f} MiB together.

Made, deterministically, by

    {command}

(encoders/training.py says how and why). Figures on a held-out world (world seed 2, never trained
on; relevance: a picture is relevant to a query when it carries all of the query's label tokens,
and alike to a picture when it has the same colour and kind; mAP@10 as in encoders/metrics.py;
recall@k counts the relevant pictures in the first k over min(k, number relevant)):

{report}

The wall time was measured on a 2-core machine shared with other work; the CPU time is the better
guide to the cost.
"""


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
