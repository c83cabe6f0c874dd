"""embed_images: bad files, reruns, renames, dry runs, concurrent runs and SIGKILL, on real files and the real database."""

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from PIL import Image as PILImage

from gallery.ingest import Ingestor
from gallery.models import Image
from tests.conftest import ROOT
from tests.factories import image_bytes, photo, write_photos

pytestmark = pytest.mark.django_db(transaction=True)  # ingestion decodes in worker threads and processes

ODD_IMAGES = ROOT.parent / "shared" / "testdata" / "odd-images"


def embed(*paths, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command("embed_images", *map(str, paths), stdout=out, stderr=err, **options)
    return out.getvalue() + err.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bad_and_odd_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    whole = image_bytes(1, size=(640, 480))
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("shopping list: milk, eggs")
    (folder / "README.txt").write_text("not an image at all")
    # A decompression bomb: 12000 x 12000 one-bit pixels compress to a few kilobytes.
    PILImage.new("1", (12000, 12000)).save(folder / "bomb.png", optimize=True)
    photo(2).convert("CMYK").save(folder / "cmyk.jpg", "JPEG")
    gradient = PILImage.linear_gradient("L").resize((300, 200)).convert("I")
    gradient.point(lambda v: v * 257).convert("I;16").save(folder / "gray16.png")
    palette = photo(3).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    palette.save(folder / "palette_transparent.png", transparency=0)
    frames = [photo(seed, size=(160, 120)) for seed in (4, 5, 6)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    # EXIF orientation 6 (rotate 90° clockwise to display): stored landscape, shown portrait.
    exif = PILImage.Exif()
    exif[0x0112] = 6
    photo(7, size=(320, 240)).save(folder / "rotated.jpg", "JPEG", exif=exif.tobytes())


def test_bad_and_odd_files_end_embedded_or_skipped_with_a_reason(tmp_path):
    make_bad_and_odd_files(tmp_path / "odd")
    output = embed(tmp_path / "odd", verbosity=1)

    embedded = {i.path: i for i in Image.objects.filter(state="embedded")}
    assert set(embedded) == {"cmyk.jpg", "gray16.png", "palette_transparent.png", "animated.gif", "rotated.jpg"}
    failed = {i.path: i.error for i in Image.objects.filter(state="failed")}
    assert set(failed) == {"truncated.jpg", "empty.jpg", "notes.jpg", "bomb.png"}
    assert "truncated" in failed["truncated.jpg"]
    assert failed["empty.jpg"] == "empty file (0 bytes)"
    assert "not an image" in failed["notes.jpg"]
    assert "too many pixels" in failed["bomb.png"] and "IMAGE_MAX_PIXELS" in failed["bomb.png"]
    assert "skipped: " in output and "README.txt: not an image" in output
    assert "Embedded 5, unchanged 0, moved 0, not an image 1, failed 4" in output

    rotated = embedded["rotated.jpg"]
    assert (rotated.width, rotated.height) == (240, 320)
    with rotated.thumbnail.open("rb") as fh, PILImage.open(fh) as thumb:
        assert thumb.height > thumb.width
    animated = embedded["animated.gif"]
    assert (animated.width, animated.height) == (160, 120)
    gray = embedded["gray16.png"]
    with gray.thumbnail.open("rb") as fh, PILImage.open(fh) as thumb:
        # 16-bit scaled to 8 bits, not clipped to white: the gradient keeps its dark end.
        assert thumb.convert("L").getextrema()[0] < 30

    # Known failures are not decoded again on a rerun (empty files cost nothing and are reported again).
    again = embed(tmp_path / "odd", verbosity=1)
    assert "Embedded 0, unchanged 8, moved 0, not an image 1, failed 1" in again
    assert Image.objects.count() == 9
    # --retry-failed decodes them again: still failing, still one row each.
    retried = embed(tmp_path / "odd", retry_failed=True, verbosity=1)
    assert "Embedded 0, unchanged 5, moved 0, not an image 1, failed 4" in retried
    assert Image.objects.count() == 9


def test_taken_at_comes_from_exif_else_the_file_time(tmp_path):
    folder = tmp_path / "dates"
    folder.mkdir()
    exif = PILImage.Exif()
    exif[0x0132] = "2019:07:14 18:30:00"
    photo(1).save(folder / "dated.jpg", "JPEG", exif=exif.tobytes())
    photo(2).save(folder / "undated.jpg", "JPEG")
    os.utime(folder / "undated.jpg", (1_600_000_000, 1_600_000_000))
    embed(folder, verbosity=0)
    dated, undated = Image.objects.get(path="dated.jpg"), Image.objects.get(path="undated.jpg")
    assert (dated.taken_at.year, dated.taken_at.month, dated.taken_at.day) == (2019, 7, 14)
    assert undated.taken_at.timestamp() == 1_600_000_000


def test_unchanged_rerun_embeds_nothing_and_a_rename_is_detected(tmp_path):
    paths = write_photos(tmp_path / "lib", 6)
    embed(tmp_path / "lib", verbosity=0)
    before = {i.sha256: (i.id, i.updated_at) for i in Image.objects.all()}

    output = embed(tmp_path / "lib", verbosity=1)
    assert "Embedded 0, unchanged 6, moved 0" in output
    assert {i.sha256: (i.id, i.updated_at) for i in Image.objects.all()} == before

    (tmp_path / "lib" / "holidays").mkdir()
    paths[2].rename(tmp_path / "lib" / "holidays" / "beach.jpg")
    output = embed(tmp_path / "lib", verbosity=1)
    assert "Embedded 0, unchanged 5, moved 1" in output
    moved = Image.objects.get(sha256=sha256(tmp_path / "lib" / "holidays" / "beach.jpg"))
    assert moved.path == "holidays/beach.jpg"
    assert Image.objects.count() == 6


def test_same_content_twice_in_a_folder_makes_one_row(tmp_path):
    paths = write_photos(tmp_path / "lib", 3)
    (tmp_path / "lib" / "copy.jpg").write_bytes(paths[0].read_bytes())
    output = embed(tmp_path / "lib", verbosity=1)
    assert Image.objects.count() == 3
    assert "unchanged 1" in output
    # and the rerun does not flip the path between the two copies
    path = Image.objects.get(sha256=sha256(paths[0])).path
    embed(tmp_path / "lib", verbosity=0)
    assert Image.objects.get(sha256=sha256(paths[0])).path == path


def test_dry_run_writes_nothing(tmp_path, media_root):
    write_photos(tmp_path / "lib", 3)
    files_before = sorted(media_root.rglob("*"))
    output = embed(tmp_path / "lib", dry_run=True, verbosity=1)
    assert "Would embed 3" in output
    assert output.count("pending: ") == 3
    assert Image.objects.count() == 0
    assert sorted(media_root.rglob("*")) == files_before


def test_files_inside_media_root_are_used_in_place(tmp_path, media_root):
    inside = media_root / "library" / "2024"
    write_photos(inside, 2, start=40)
    embed(media_root / "library", verbosity=0)
    names = sorted(Image.objects.values_list("file", flat=True))
    assert names == ["library/2024/photo_0040.jpg", "library/2024/photo_0041.jpg"]


def test_model_switch_is_left_alone_unless_reembed(tmp_path, settings, standin_encoders):
    from encoders import embeddings

    write_photos(tmp_path / "lib", 2)
    embed(tmp_path / "lib", verbosity=0)
    Image.objects.update(encoder="an-older-model")
    assert "unchanged 2" in embed(tmp_path / "lib", verbosity=1)
    output = embed(tmp_path / "lib", reembed=True, verbosity=1)
    assert "Embedded 2" in output
    assert set(Image.objects.values_list("encoder", flat=True)) == {embeddings.image_encoder_id()}


def test_symlinks_leading_out_of_the_folder_are_not_followed(tmp_path):
    outside = write_photos(tmp_path / "outside", 1, start=50)[0]
    write_photos(tmp_path / "lib", 1)
    (tmp_path / "lib" / "escape.jpg").symlink_to(outside)
    (tmp_path / "lib" / "inside.jpg").symlink_to(tmp_path / "lib" / "photo_0000.jpg")
    output = embed(tmp_path / "lib", verbosity=1)
    assert "escape.jpg: symbolic link leading out of the folder, not followed" in output
    assert not Image.objects.filter(sha256=sha256(outside)).exists()
    assert Image.objects.count() == 1


def test_missing_model_is_a_fatal_error_before_any_work(tmp_path, settings, media_root):
    from django.core.management import CommandError

    from encoders import embeddings

    write_photos(tmp_path / "lib", 2)
    settings.CLIP_IMAGE_MODEL = str(tmp_path / "no-model")
    embeddings.clear_cache()
    try:
        with pytest.raises(CommandError, match="CLIP_IMAGE_MODEL"):
            embed(tmp_path / "lib", verbosity=0)
    finally:
        embeddings.clear_cache()
    assert Image.objects.count() == 0


@pytest.mark.parametrize("trouble", ["hang", "crash"])
def test_a_file_that_hangs_or_crashes_the_decoder_costs_only_that_file(tmp_path, trouble):
    """The per-file time limit: a worker stuck on one file is killed, and the run goes on; likewise a crash."""
    write_photos(tmp_path / "lib", 3)
    (tmp_path / "lib" / f"{trouble}.jpg").write_bytes(image_bytes(99))
    outcomes = []
    ingestor = Ingestor(
        file_timeout=3, workers=2, decode_function="tests.gallery.troublesome.decode", on_outcome=outcomes.append
    )
    started = time.monotonic()
    report = ingestor.run([tmp_path / "lib"])
    assert time.monotonic() - started < 60
    assert report.counts["embedded"] == 3 and report.counts["failed"] == 1
    (failure,) = [o for o in outcomes if o.kind == "failed"]
    expected = "took longer than 3s to decode" if trouble == "hang" else "crashed the image decoder"
    assert failure.path.name == f"{trouble}.jpg" and expected in failure.reason
    assert Image.objects.get(path=f"{trouble}.jpg").state == "failed"
    assert Image.objects.filter(state="embedded").count() == 3


# Real processes: SIGKILL mid-run, and two runs at once.


def command_env() -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        EMBEDDED_DB_NAME=connection.settings_dict["NAME"],
        PYTHONUNBUFFERED="1",
    )
    return env


def start_embed(folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "embed_images", str(folder), "--no-progress", *extra],
        cwd=ROOT,
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigkill_mid_run_then_rerun_leaves_exactly_the_right_rows(tmp_path):
    paths = write_photos(tmp_path / "lib", 60, size=(480, 360))
    expected = {sha256(p) for p in paths}

    process = start_embed(tmp_path / "lib", "--batch-size", "4", "--workers", "1")
    deadline = time.monotonic() + 120
    while Image.objects.count() < 8:
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "the run never wrote a row"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    written = Image.objects.count()
    assert 8 <= written < 60, "the kill came too late to test anything"
    # No half-written row: whatever is there is complete.
    assert not Image.objects.exclude(state="embedded").exists()
    assert not Image.objects.filter(embedding__isnull=True).exists()

    rerun = start_embed(tmp_path / "lib")
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    assert f"Embedded {60 - written}, unchanged {written}" in output
    assert Image.objects.count() == 60
    assert set(Image.objects.values_list("sha256", flat=True)) == expected
    assert Image.objects.filter(state="embedded", embedding__isnull=False).count() == 60


def test_two_concurrent_runs_make_no_duplicates(tmp_path):
    paths = write_photos(tmp_path / "lib", 40)
    first, second = (
        start_embed(tmp_path / "lib", "--batch-size", "4"),
        start_embed(tmp_path / "lib", "--batch-size", "4"),
    )
    out1, _ = first.communicate(timeout=300)
    out2, _ = second.communicate(timeout=300)
    assert first.returncode == 0, out1
    assert second.returncode == 0, out2
    assert Image.objects.count() == 40
    assert set(Image.objects.values_list("sha256", flat=True)) == {sha256(p) for p in paths}


@pytest.mark.skipif(not ODD_IMAGES.is_dir(), reason="../shared/testdata/odd-images is not here")
def test_real_world_corpus_every_file_embedded_or_skipped_with_a_reason(tmp_path):
    files = [p for p in ODD_IMAGES.rglob("*") if p.is_file() and not p.is_symlink()]
    started = time.monotonic()
    output = embed(ODD_IMAGES, file_timeout=20, verbosity=2)
    assert time.monotonic() - started < 240, "the corpus took too long: something hangs"
    match = re.search(r"Embedded (\d+), unchanged (\d+), moved (\d+), not an image (\d+), failed (\d+)", output)
    summary = match.group(0)
    numbers = dict(zip(["embedded", "unchanged", "moved", "skipped", "failed"], map(int, match.groups()), strict=True))
    assert sum(numbers.values()) == len(files), summary
    assert numbers["embedded"] > 250
    for path in files:
        name = str(path)
        # every file is accounted for: embedded (a row), a duplicate (unchanged), or named with a reason
        assert Image.objects.filter(sha256=sha256(path)).exists() or f"{name}: " in output, (
            f"{name} has no row and no reason"
        )
