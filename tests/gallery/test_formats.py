"""The format registry: names resolve, every file it serves has a type, and everything that asks reads it."""

import io
from collections import Counter
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.urls import reverse

from gallery import formats
from gallery.forms import ImageUploadForm
from gallery.imaging import register_plugins
from gallery.models import Image
from gallery.storage import image_name
from search.forms import FilterForm
from search.selectors import ImageFilters
from tests.factories import photo

SHA = "ab" * 32
SERVED = {extension: f.mime_type for f in formats.FORMATS if f.mime_type for extension in f.extensions}
EXTENSIONS = {extension for f in formats.FORMATS for extension in f.extensions}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("JPEG", "JPEG"),
        ("jpg", "JPEG"),
        ("JPE", "JPEG"),
        ("jfif", "JPEG"),
        ("MPO", "JPEG"),
        (" tif ", "TIFF"),
        ("heic", "HEIF"),
        ("HEIF", "HEIF"),
        ("webp", "WEBP"),
        ("XCF", None),
        ("", None),
    ],
)
def test_names_and_aliases_resolve_to_their_format(name, expected):
    found = formats.find(name)
    assert (found.name if found else None) == expected


def test_every_name_and_extension_belongs_to_one_format():
    names = Counter(key.upper() for f in formats.FORMATS for key in (f.name, *f.aliases, *f.variants))
    extensions = Counter(e for f in formats.FORMATS for e in f.extensions)
    assert [name for name, count in names.items() if count > 1] == []
    assert [extension for extension, count in extensions.items() if count > 1] == []
    assert all(e.startswith(".") and e == e.lower() for e in extensions)


def test_every_extension_is_one_pillow_reads_as_that_format():
    from PIL import Image as PILImage

    register_plugins()
    pillow = PILImage.registered_extensions()
    # Pillow recognises these by their content only; people still name files so.
    by_content = {".spider", ".ftex"}
    wrong = [
        (extension, f.name, pillow.get(extension))
        for f in formats.FORMATS
        for extension in f.extensions
        if extension not in by_content and pillow.get(extension) not in f.stored_names
    ]
    assert wrong == []


def test_every_served_extension_has_an_image_type_and_nothing_else_is_served():
    assert SERVED
    for extension, mime_type in SERVED.items():
        assert mime_type.startswith("image/"), extension
        assert formats.served_type(f"images/ab/photo{extension.upper()}") == mime_type
    assert formats.served_type("images/ab/photo.jpe") == "image/jpeg"
    assert formats.served_type("images/ab/photo.tif") == "image/tiff"
    for not_served in ("page.html", "drawing.svg", "scan.ppm", "layers.psd", "jpg", "images/a.jpg/readme"):
        assert formats.served_type(not_served) is None, not_served
    # Every format people can filter by is one whose files can be shown.
    assert all(f.mime_type for f in formats.FORMATS if f.filterable)


def test_a_stored_copy_gets_a_name_it_is_served_under_as_its_format():
    for f in formats.FORMATS:
        for pillow_name in f.stored_names:
            name = image_name(SHA, pillow_name)
            assert name == f"images/ab/{SHA}{f.extensions[0]}"
            assert formats.served_type(name) == (f.mime_type or None)
    assert image_name(SHA, "MPO").endswith(".jpg")
    assert image_name(SHA, "HEIF").endswith(".heic")
    assert image_name(SHA, "XCF").endswith(".xcf")  # a format Pillow learns later: its own name
    assert image_name(SHA, "").endswith(".bin")


@pytest.mark.django_db(transaction=True)  # ingestion decodes in worker threads
def test_ingestion_reads_the_registry_formats_and_fails_only_files_named_like_them(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    photo(11, size=(64, 48)).save(folder / "scan.ppm", "PPM")
    (folder / "broken.psd").write_bytes(b"8BPS not really")
    (folder / "drawing.xcf").write_bytes(b"gimp xcf not really")
    out = io.StringIO()
    call_command("embed_images", str(folder), stdout=out, stderr=out, verbosity=1)

    scan = Image.objects.get(path="scan.ppm")
    assert scan.state == Image.State.EMBEDDED and scan.format == "PPM"
    assert scan.file.name.endswith(".ppm")  # stored, though never served: results show its thumbnail
    assert Image.objects.get(path="broken.psd").state == Image.State.FAILED
    assert not Image.objects.filter(path="drawing.xcf").exists()
    assert "not an image 1, failed 1" in out.getvalue()


def test_the_accept_list_names_every_type_and_extension_read():
    accepted = formats.ACCEPT.split(",")
    assert len(accepted) == len(set(accepted))
    assert {f.mime_type for f in formats.FORMATS if f.mime_type} <= set(accepted)
    assert set(accepted) >= EXTENSIONS
    assert "image/*" not in accepted and "image/svg+xml" not in accepted


def test_the_filter_choices_come_from_the_registry():
    choices = list(FilterForm().fields["format"].choices)
    assert choices[0] == ("", "Any format")
    assert choices[1:] == [(f.name, f.label) for f in formats.FORMATS if f.filterable]
    assert ("HEIF", "HEIC / HEIF") in choices and ("PPM", "Netpbm") not in choices


class _Form(HTMLParser):
    """The file inputs and each select's option values of a page."""

    def __init__(self):
        super().__init__()
        self.file_inputs, self.options, self._select = [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "file":
            self.file_inputs.append(attrs)
        elif tag == "select":
            self._select = attrs.get("name")
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(attrs.get("value"))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


@pytest.mark.django_db
def test_the_page_offers_the_registry_formats_and_accepts_its_files(client):
    page = _Form()
    page.feed(client.get(reverse("search:index")).content.decode())
    (file_input,) = page.file_inputs
    assert file_input["accept"] == formats.ACCEPT
    assert page.options["format"] == ["", *(f.name for f in formats.FORMATS if f.filterable)]


def test_the_admin_upload_accepts_the_registry_files():
    assert ImageUploadForm().fields["files"].widget.attrs["accept"] == formats.ACCEPT


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ("jpg", {"JPEG", "MPO"}),
        ("JPEG", {"JPEG", "MPO"}),
        ("mpo", {"JPEG", "MPO"}),
        ("tif", {"TIFF"}),
        ("heic", {"HEIF"}),
        ("png", {"PNG"}),
        ("PPM", {"PPM"}),
        ("XCF", set()),
    ],
)
def test_a_format_filter_matches_the_whole_family(asked, found):
    for i, pillow_name in enumerate(["JPEG", "MPO", "PNG", "TIFF", "HEIF", "PPM", "WEBP"]):
        Image.objects.create(sha256=f"{i:064x}", file=f"i/{i}", format=pillow_name, state=Image.State.EMBEDDED)
    filtered = ImageFilters(format=asked).apply(Image.objects.all())
    assert set(filtered.values_list("format", flat=True)) == found


@pytest.mark.parametrize("extension", sorted(SERVED))
def test_media_serving_sends_each_served_file_with_its_registry_type(client, media_root, extension):
    folder = media_root / "images" / "formats"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"file{extension}").write_bytes(b"\x00" * 16)
    response = client.get(f"/media/images/formats/file{extension}")
    assert response.status_code == 200
    assert response["Content-Type"] == SERVED[extension]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_media_serving_refuses_files_the_registry_does_not_serve(client, media_root):
    folder = media_root / "images" / "formats"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("scan.ppm", "drawing.svg"):
        (folder / name).write_bytes(b"\x00" * 16)
        assert client.get(f"/media/images/formats/{name}").status_code == 404
