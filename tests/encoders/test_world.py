"""The generated world: deterministic, labelled truthfully, in mixed formats with dates, captioned in 8 languages."""

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoders import world
from encoders.metrics import average_precision_at_k, recall_at_k, top_k_overlap

COUNT = 40


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> tuple[Path, list[world.Spec]]:
    directory = tmp_path_factory.mktemp("world")
    return directory, world.make_world(directory, count=COUNT, seed=7)


def test_same_seed_same_bytes(small_world, tmp_path):
    directory, _ = small_world
    world.make_world(tmp_path, count=COUNT, seed=7)
    assert _digest(tmp_path) == _digest(directory)


def test_other_seed_other_world(small_world, tmp_path):
    directory, _ = small_world
    world.make_world(tmp_path, count=COUNT, seed=8)
    assert world.read_labels(tmp_path) != world.read_labels(directory)


def test_labels_csv_matches_specs(small_world):
    directory, specs = small_world
    labels = world.read_labels(directory)
    assert labels == {spec.path: spec.labels for spec in specs}
    for spec in specs:
        assert set(labels[spec.path]) == {
            spec.kind,
            spec.colour,
            f"{spec.colour}-{spec.kind}",
            f"background:{spec.background}",
            f"count:{spec.count}",
        }
        assert len(spec.objects) == spec.count
        assert (directory / spec.path).is_file()


def test_formats_folders_sizes_and_exif(small_world):
    directory, specs = small_world
    seen_formats = set()
    for spec in specs:
        with Image.open(directory / spec.path) as image:
            seen_formats.add(image.format)
            assert image.size == (spec.width, spec.height)
            assert spec.path.startswith(f"{spec.date.year}/")
            original = image.getexif().get_ifd(0x8769).get(0x9003)
            if spec.fmt in ("jpeg", "webp"):
                assert original == spec.date.strftime("%Y:%m:%d %H:%M:%S")
    assert seen_formats == {"JPEG", "PNG", "WEBP"}
    assert len({spec.date.year for spec in specs}) > 1
    assert len({spec.width for spec in specs}) > 3
    assert len({round(spec.width / spec.height, 2) for spec in specs}) == len(world.ASPECTS)


def test_some_names_carry_the_truth():
    specs = world.draw_specs(500, seed=3)
    truthful = [s for s in specs if s.truthful_name]
    assert 0.2 < len(truthful) / len(specs) < 0.4
    for spec in truthful:
        assert Path(spec.path).name.startswith(f"{spec.colour}-{spec.kind}-")
    for spec in specs:
        if not spec.truthful_name:
            assert spec.kind not in spec.path and spec.colour not in spec.path


def test_objects_stay_in_their_own_cells():
    for spec in world.draw_specs(300, seed=4):
        cells = set()
        for obj in spec.objects:
            half_w = obj.size * min(spec.width, spec.height) / 2 / spec.width
            half_h = obj.size * min(spec.width, spec.height) / 2 / spec.height
            col, row = int(obj.cx >= 0.5), int(obj.cy >= 0.5)
            cells.add((col, row))
            assert col * 0.5 - 1e-9 <= obj.cx - half_w and obj.cx + half_w <= col * 0.5 + 0.5 + 1e-9
            assert row * 0.5 - 1e-9 <= obj.cy - half_h and obj.cy + half_h <= row * 0.5 + 0.5 + 1e-9
        assert len(cells) == spec.count


def test_captions_in_every_language():
    spec = world.draw_specs(1, seed=5)[0]
    texts = world.captions(spec)
    assert set(texts) == set(world.LANGUAGES)
    assert all(texts.values())
    assert len(set(texts.values())) == len(world.LANGUAGES)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in texts["zh"])
    assert any("\u0600" <= ch <= "\u06ff" for ch in texts["ar"])
    assert any("\u0400" <= ch <= "\u04ff" for ch in texts["ru"])


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "two red stars on the sand"),
        ("de", "zwei rote Sterne am Strand"),
        ("fr", "deux étoiles rouges sur le sable"),
        ("es", "dos estrellas rojas en la arena"),
        ("ru", "две красные звезды на песке"),
        ("ar", "نجمتان حمراوان على الرمل"),
    ],
)
def test_grammar_agrees(language, expected):
    rendered = {
        world.phrase(language, np.random.default_rng(seed), kind="star", colour="red", count=2, background="sand")
        for seed in range(200)
    }
    assert expected in rendered


def test_caption_labels_are_a_subset_of_the_picture():
    rng = np.random.default_rng(0)
    for spec in world.draw_specs(200, seed=6):
        text, language, tokens = world.caption(spec, rng)
        assert text and language in world.LANGUAGES
        assert spec.kind in tokens
        assert world.relevant(tokens, spec.labels)


def test_queries_file_and_relevance(small_world):
    directory, specs = small_world
    with open(directory / "queries.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"query", "language", "labels"}
    assert {row["language"] for row in rows} == set(world.LANGUAGES)
    labels = [set(spec.labels) for spec in specs]
    for row in rows:
        assert any(set(row["labels"].split()) <= picture for picture in labels)
    assert world.queries() == world.queries()
    assert len(world.queries()) == len(world.query_families()) * len(world.LANGUAGES)


def test_image_relevance_token():
    assert world.image_relevance_token(("star", "red", "red-star", "background:sand", "count:2")) == "red-star"


def test_metrics():
    assert average_precision_at_k([True, False, True], 10, 2) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision_at_k([True] * 10, 10, 50) == 1.0
    assert average_precision_at_k([False] * 10, 10, 3) == 0.0
    assert recall_at_k([False, True, False], 3, 1) == 1.0
    assert top_k_overlap([1, 2, 3], [3, 2, 9], 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        average_precision_at_k([True], 10, 0)


def test_make_world_command(tmp_path):
    from django.core.management import CommandError, call_command

    out = tmp_path / "out.txt"
    with open(out, "w") as handle:
        call_command("make_world", str(tmp_path / "w"), count=12, seed=1, stdout=handle)
    assert "Wrote 12 pictures" in out.read_text()
    assert len(world.read_labels(tmp_path / "w")) == 12
    with pytest.raises(CommandError):
        call_command("make_world", str(tmp_path / "x"), count=0)
