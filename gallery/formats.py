"""Image formats: the one registry of what is read, stored, served and offered as a filter.

Everything that asks "is this an image, and which?" reads it: ingestion (which file names are
images), storage (the extension a stored copy gets), media serving (the content type a file is
served with; nothing else is served), the search filter (its choices, and the names a choice
matches) and the page's file inputs (their ``accept`` list, which the page's script also checks).
Pillow is not imported: the names are Pillow's, written down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class ImageFormat:
    """One format: its names, file name endings and content type."""

    name: str  # what Pillow reports (PIL.Image.format), and so what Image.format holds
    label: str  # for people
    extensions: tuple[str, ...]  # lower case, with the dot; a stored copy gets the first
    mime_type: str = ""  # files are served as this; empty: never served (browsers cannot show them)
    aliases: tuple[str, ...] = ()  # other names people use for it
    variants: tuple[str, ...] = ()  # other names Pillow gives files of this format, also in Image.format
    filterable: bool = False  # offered by the search's format filter

    @property
    def stored_names(self) -> tuple[str, ...]:
        """What Image.format holds for a file of this format."""
        return (self.name, *self.variants)


FORMATS = (
    # Offered by the filter, in this order; all are served as they are.
    ImageFormat(
        "JPEG",
        "JPEG",
        (".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"),
        "image/jpeg",
        aliases=("JPG", "JPE", "JFIF"),
        # A camera's multi-picture JPEG: browsers show its first picture.
        variants=("MPO",),
        filterable=True,
    ),
    # An animated PNG is a PNG to Pillow and to browsers.
    ImageFormat("PNG", "PNG", (".png", ".apng"), "image/png", filterable=True),
    ImageFormat("WEBP", "WebP", (".webp",), "image/webp", filterable=True),
    # pillow-heif names every HEIF file HEIF; what phones write is HEIC.
    ImageFormat("HEIF", "HEIC / HEIF", (".heic", ".heif"), "image/heic", aliases=("HEIC",), filterable=True),
    ImageFormat("AVIF", "AVIF", (".avif",), "image/avif", filterable=True),
    ImageFormat("GIF", "GIF", (".gif",), "image/gif", filterable=True),
    ImageFormat("TIFF", "TIFF", (".tif", ".tiff"), "image/tiff", aliases=("TIF",), filterable=True),
    ImageFormat("BMP", "BMP", (".bmp",), "image/bmp", filterable=True),
    ImageFormat("ICO", "Windows icon", (".ico",), "image/x-icon"),
    # Read, embedded and thumbnailed, never served as they are (the thumbnail stands in).
    ImageFormat("DIB", "Device-independent bitmap", (".dib",)),
    ImageFormat("JPEG2000", "JPEG 2000", (".jp2", ".jpf", ".jpx", ".j2k")),
    ImageFormat("PPM", "Netpbm", (".ppm", ".pgm", ".pbm", ".pnm")),
    ImageFormat("TGA", "Targa", (".tga",)),
    ImageFormat("QOI", "QOI", (".qoi",)),
    ImageFormat("PCX", "PCX", (".pcx",)),
    ImageFormat("PSD", "Photoshop", (".psd",)),
    ImageFormat("DDS", "DirectDraw surface", (".dds",)),
    ImageFormat("SGI", "SGI image", (".sgi", ".rgb")),
    ImageFormat("IM", "IFUNC image", (".im",)),
    ImageFormat("XBM", "X bitmap", (".xbm",)),
    ImageFormat("XPM", "X pixmap", (".xpm",)),
    ImageFormat("MSP", "Microsoft Paint", (".msp",)),
    ImageFormat("ICNS", "Apple icon", (".icns",)),
    ImageFormat("FLI", "FLI/FLC animation", (".fli", ".flc")),
    ImageFormat("SPIDER", "SPIDER", (".spider",)),
    ImageFormat("SUN", "Sun raster", (".ras",)),
    ImageFormat("EPS", "Encapsulated PostScript", (".eps",)),
    ImageFormat("BLP", "Blizzard texture", (".blp",)),
    ImageFormat("FTEX", "Firaxis texture", (".ftex",)),
    ImageFormat("GBR", "GIMP brush", (".gbr",)),
    ImageFormat("DCX", "Multi-page PCX", (".dcx",)),
)

_BY_NAME = {
    key.upper(): image_format
    for image_format in FORMATS
    for key in (image_format.name, *image_format.aliases, *image_format.variants)
}
_BY_EXTENSION = {extension: image_format for image_format in FORMATS for extension in image_format.extensions}

# The search's format filter: (what it asks Image.format for, what people read).
FILTER_CHOICES = [(fmt.name, fmt.label) for fmt in FORMATS if fmt.filterable]
FILTER_LABELS = [label for _, label in FILTER_CHOICES]  # the formats people know by name
# A file input's accept attribute: every content type and file name ending read here.
ACCEPT = ",".join(
    [*dict.fromkeys(fmt.mime_type for fmt in FORMATS if fmt.mime_type), *(e for f in FORMATS for e in f.extensions)]
)


def find(name: str) -> ImageFormat | None:
    """The format called ``name`` (its name, an alias or a variant, in any case), if known."""
    return _BY_NAME.get(name.strip().upper())


def stored_names(name: str) -> tuple[str, ...]:
    """What Image.format holds for the format called ``name`` (JPG: JPEG and MPO); an unknown name as it is."""
    image_format = find(name)
    return image_format.stored_names if image_format else (name.strip().upper(),)


def stored_extension(name: str) -> str:
    """The extension, without the dot, of a stored copy of a file Pillow calls ``name``."""
    image_format = find(name)
    if image_format is None:
        return (name or "bin").lower()
    return image_format.extensions[0].lstrip(".")


def for_file(path: str | PurePath) -> ImageFormat | None:
    """The format a file named ``path`` is in, by its ending; None: not named like an image."""
    return _BY_EXTENSION.get(PurePath(path).suffix.lower())


def served_type(path: str | PurePath) -> str | None:
    """The content type the file at ``path`` is served as; None: it is not served."""
    image_format = for_file(path)
    return (image_format.mime_type or None) if image_format else None
