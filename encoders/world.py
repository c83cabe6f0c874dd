"""A generated, labelled picture world: coloured objects on backgrounds, with captions in 8 languages.

Every picture holds 1 to 3 objects of one kind and one colour on one background. Objects sit in
distinct cells of a 2x2 grid of the picture (which cells is random; within its cell an object has a
random size, 65-90% of the cell's short side, a small offset, a small tilt and may be mirrored).
The grid is relative to the picture, so after an encoder squeezes a picture to its square input
every object lies inside one input quadrant: that is what a tiny ViT with quadrant-sized patches
learns in minutes, where objects placed anywhere are not learnt in that time (see encoders/training.py).

Label tokens (``labels.csv``: ``path,labels``, tokens space-separated), per picture:

    <kind> <colour> <colour>-<kind> background:<background> count:<n>

e.g. ``star red red-star background:sand count:2``. Kinds and colours are disjoint words, so bare tokens
never collide. A query carries the tokens it asks for (``queries.csv``: ``query,language,labels``),
and **a picture is relevant to a query when the query's tokens are a subset of the picture's**:
"two stars" -> ``star count:2``; "a red star on the beach" -> ``star red background:sand``.
Image-to-image relevance: two pictures are alike when they share kind and colour (the ``<colour>-<kind>``
token); background and count do not matter (see ``image_relevance_token``).

Truth in file names and folders: pictures go into one folder per year of their date
(``2021/``...), the date is in EXIF DateTimeOriginal for JPEG and WebP (PNG has none, as from many
cameras' exports); about 30% of file names carry colour and kind (``red-star-0012.jpg``), the rest are
camera-style (``IMG_0012.jpg``, ``DSC00012.png``, ``PXL_2021..._0012.webp``).

``python -m encoders.world DIR --count N --seed S`` writes a world; so does ``manage.py make_world``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("circle", "square", "triangle", "star", "heart", "cross", "ring", "house", "tree", "boat", "fish", "car")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
BACKGROUNDS = ("sky", "sea", "grass", "sand", "snow", "night")
COUNTS = (1, 2, 3)
LANGUAGES = ("en", "de", "fr", "es", "zh", "ja", "ar", "ru")
FORMATS = ("jpeg", "png", "webp")
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
WIDTHS = (160, 192, 224, 256, 320, 384, 448, 512, 640)
ASPECTS = ((3, 4), (1, 1), (4, 3), (16, 9))  # width:height
TRUTHFUL_NAME_SHARE = 0.3
JITTER = 0.25  # share of its cell's slack an object may move off the cell's centre

RGB = {
    "red": (220, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 30),
    "green": (35, 165, 50),
    "blue": (35, 75, 220),
    "purple": (135, 45, 175),
    "pink": (245, 125, 190),
    "white": (250, 250, 250),
}


# --------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Placed:
    """One object, in coordinates relative to the picture (0..1)."""

    cx: float
    cy: float
    size: float  # side of its square box, relative to the picture's shorter side
    angle: float  # degrees
    mirror: bool
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Spec:
    """Everything that decides one picture: its truth, its geometry and how it is degraded and stored."""

    index: int
    kind: str
    colour: str
    count: int
    background: str
    width: int
    height: int
    objects: tuple[Placed, ...]
    texture_seed: int
    noise: float  # Gaussian noise sigma, in 0..255 levels
    blur: float  # Gaussian blur radius, in pixels at 320 px width
    quality: int  # JPEG / WebP quality
    fmt: str
    date: datetime
    truthful_name: bool

    @property
    def labels(self) -> tuple[str, ...]:
        return labels_of(self.kind, self.colour, self.background, self.count)

    @property
    def path(self) -> str:
        """Relative path: a folder per year, a name that sometimes says what is in the picture."""
        ext = EXTENSIONS[self.fmt]
        if self.truthful_name:
            name = f"{self.colour}-{self.kind}-{self.index:04d}.{ext}"
        else:
            style = self.texture_seed % 3
            if style == 0:
                name = f"IMG_{self.index:04d}.{ext}"
            elif style == 1:
                name = f"DSC{self.index:05d}.{ext}"
            else:
                name = f"PXL_{self.date:%Y%m%d_%H%M%S}_{self.index:04d}.{ext}"
        return f"{self.date.year}/{name}"


def labels_of(kind: str, colour: str, background: str, count: int) -> tuple[str, ...]:
    return (kind, colour, f"{colour}-{kind}", f"background:{background}", f"count:{count}")


def image_relevance_token(labels: Iterable[str]) -> str:
    """The token two pictures must share to be alike (image-to-image search): ``<colour>-<kind>``."""
    return next(token for token in labels if "-" in token and ":" not in token)


def draw_spec(rng: np.random.Generator, index: int) -> Spec:
    """Draw one picture's spec; the same generator state always gives the same spec."""
    kind = KINDS[rng.integers(len(KINDS))]
    colour = COLOURS[rng.integers(len(COLOURS))]
    count = int(COUNTS[rng.integers(len(COUNTS))])
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    width = int(WIDTHS[rng.integers(len(WIDTHS))])
    aw, ah = ASPECTS[rng.integers(len(ASPECTS))]
    height = round(width * ah / aw)
    cells = rng.permutation(4)[:count]
    objects = []
    short = min(width, height)
    for cell in cells:
        col, row = int(cell) % 2, int(cell) // 2
        # Box side relative to the cell's shorter side; the object stays inside its cell.
        cell_w, cell_h = width / 2, height / 2
        side = float(rng.uniform(0.65, 0.9)) * min(cell_w, cell_h)
        slack_x, slack_y = (cell_w - side) / 2, (cell_h - side) / 2
        # A small offset: a 32 px patch embedding is a linear template, and the trained ViT learns
        # shapes in minutes only while each object stays near the middle of its input quadrant.
        cx = (col + 0.5) * cell_w + float(rng.uniform(-JITTER, JITTER)) * slack_x
        cy = (row + 0.5) * cell_h + float(rng.uniform(-JITTER, JITTER)) * slack_y
        tilt = 12.0 if kind in ("circle", "square", "triangle", "star", "heart", "cross", "ring") else 6.0
        base = np.array(RGB[colour], dtype=float)
        rgb = np.clip(base * rng.uniform(0.85, 1.08) + rng.integers(-18, 19, 3), 0, 255).astype(int)
        objects.append(
            Placed(
                cx=cx / width,
                cy=cy / height,
                size=side / short,
                angle=float(rng.uniform(-tilt, tilt)),
                mirror=bool(rng.random() < 0.5),
                rgb=(int(rgb[0]), int(rgb[1]), int(rgb[2])),
            )
        )
    start = datetime(2018, 1, 1)
    date = start + timedelta(seconds=int(rng.integers(0, 7 * 365 * 24 * 3600)))
    return Spec(
        index=index,
        kind=kind,
        colour=colour,
        count=count,
        background=background,
        width=width,
        height=height,
        objects=tuple(objects),
        texture_seed=int(rng.integers(2**31)),
        noise=float(rng.uniform(0, 9)),
        blur=float(rng.uniform(0, 1.3)),
        quality=int(rng.integers(45, 96)),
        fmt=FORMATS[rng.choice(3, p=(0.5, 0.25, 0.25))],
        date=date,
        truthful_name=bool(rng.random() < TRUTHFUL_NAME_SHARE),
    )


def draw_specs(count: int, seed: int) -> list[Spec]:
    rng = np.random.default_rng(seed)
    return [draw_spec(rng, index) for index in range(count)]


# ----------------------------------------------------------------------------------------- rendering


def _gradient(h: int, w: int, top: Sequence[float], bottom: Sequence[float]) -> np.ndarray:
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t, (h, w, 3)).copy()


def _background(name: str, w: int, h: int, rng: np.random.Generator) -> Image.Image:
    shade = rng.uniform(0.9, 1.08)
    if name == "sky":
        arr = _gradient(h, w, (110, 165, 225), (185, 215, 240))
    elif name == "sea":
        arr = _gradient(h, w, (35, 95, 150), (20, 60, 110))
        rows = np.arange(h, dtype=np.float32)[:, None]
        cols = np.arange(w, dtype=np.float32)[None, :]
        phase = rng.uniform(0, 6.3)
        waves = np.sin(rows / max(h, 1) * 40 + np.sin(cols / max(w, 1) * 9 + phase) * 2.5)
        arr += (np.clip(waves, 0.75, 1) - 0.75)[..., None] * 160
    elif name == "grass":
        arr = np.empty((h, w, 3), np.float32)
        arr[:] = (95, 145, 70)
    elif name == "sand":
        arr = _gradient(h, w, (225, 205, 160), (205, 180, 130))
    elif name == "snow":
        arr = _gradient(h, w, (232, 238, 245), (210, 220, 235))
    else:  # night
        arr = _gradient(h, w, (10, 15, 40), (30, 35, 70))
    arr *= shade
    # Low-frequency blotches so backgrounds are not flat colour.
    small = rng.normal(0, 10, (max(2, h // 24), max(2, w // 24), 1)).astype(np.float32)
    blotch = np.asarray(Image.fromarray(small[..., 0]).resize((w, h), Image.BILINEAR), np.float32)[..., None]
    arr += blotch
    scale = min(w, h)
    if name == "grass":
        # Vertical streaks: noise stretched upwards reads as blades of grass.
        streaks = rng.normal(0, 22, (max(2, h // 6), max(2, w // 2))).astype(np.float32)
        arr += np.asarray(Image.fromarray(streaks).resize((w, h), Image.BILINEAR), np.float32)[..., None] * (
            0.6,
            1,
            0.5,
        )
    elif name in ("sand", "night"):
        # Specks: grains of sand, or faint stars in the night sky.
        share = 0.12 if name == "sand" else 0.004
        specks = rng.random((h, w)) < share
        arr[specks] = rng.uniform(0.75, 0.95) * arr[specks] if name == "sand" else rng.uniform(110, 220)
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if name == "sky":
        for _ in range(int(rng.integers(1, 4))):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), scale * rng.uniform(0.06, 0.14)
            draw.ellipse((x - 2.2 * r, y - r, x + 2.2 * r, y + r), fill=(232, 240, 248))
    elif name == "snow":
        for _ in range(int(rng.integers(1, 3))):
            x, r = rng.uniform(0, w), scale * rng.uniform(0.3, 0.6)
            draw.ellipse((x - 2 * r, h - r * 0.6, x + 2 * r, h + r), fill=(200, 212, 230))
    if name in ("sky", "snow"):
        image = image.filter(ImageFilter.GaussianBlur(max(1.0, scale / 80)))
    return image


def _unit_shape(kind: str) -> list[list[tuple[float, float]]]:
    """Polygons in a [-1, 1] box; the first is filled with the object's colour."""
    if kind == "circle":
        return [[(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 40, endpoint=False)]]
    if kind == "square":
        return [[(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]]
    if kind == "triangle":
        return [[(0, -0.95), (0.95, 0.75), (-0.95, 0.75)]]
    if kind == "star":
        return [
            [
                (
                    (1.0 if i % 2 == 0 else 0.42) * math.sin(i * math.pi / 5),
                    -(1.0 if i % 2 == 0 else 0.42) * math.cos(i * math.pi / 5),
                )
                for i in range(10)
            ]
        ]
    if kind == "heart":
        pts = []
        for t in np.linspace(0, 2 * math.pi, 40, endpoint=False):
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((x / 17, -y / 17 + 0.1))
        return [pts]
    if kind == "cross":
        a, b = 0.3, 0.95
        return [
            [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
        ]
    if kind == "house":
        return [
            [(-0.7, 0.95), (-0.7, -0.1), (0, -0.9), (0.7, -0.1), (0.7, 0.95)],
            [(-0.15, 0.95), (-0.15, 0.4), (0.15, 0.4), (0.15, 0.95)],
        ]
    if kind == "tree":
        crown = [
            (0.75 * math.cos(t), -0.25 + 0.7 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 30, endpoint=False)
        ]
        return [crown, [(-0.12, 0.4), (0.12, 0.4), (0.12, 0.98), (-0.12, 0.98)]]
    if kind == "boat":
        return [
            [(-0.95, 0.3), (0.95, 0.3), (0.6, 0.75), (-0.6, 0.75)],
            [(0.0, -0.9), (0.0, 0.25), (0.6, 0.25)],
            [(-0.04, -0.9), (0.04, -0.9), (0.04, 0.3), (-0.04, 0.3)],
        ]
    if kind == "fish":
        body = [
            (-0.15 + 0.65 * math.cos(t), 0.45 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 30, endpoint=False)
        ]
        return [body, [(0.45, 0.0), (0.95, -0.45), (0.95, 0.45)]]
    if kind == "car":
        return [
            [
                (-0.95, 0.0),
                (-0.5, 0.0),
                (-0.3, -0.45),
                (0.35, -0.45),
                (0.55, 0.0),
                (0.95, 0.0),
                (0.95, 0.5),
                (-0.95, 0.5),
            ],
        ]
    raise ValueError(f"unknown kind {kind!r}")


def _transform(points, cx: float, cy: float, half: float, angle: float, mirror: bool):
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    out = []
    for x, y in points:
        x = -x if mirror else x
        out.append((cx + half * (c * x - s * y), cy + half * (s * x + c * y)))
    return out


def _draw_object(draw: ImageDraw.ImageDraw, kind: str, obj: Placed, w: int, h: int) -> None:
    cx, cy, half = obj.cx * w, obj.cy * h, obj.size * min(w, h) / 2
    fill = obj.rgb
    dark = tuple(int(v * 0.3) for v in fill)
    light = tuple(int(v + (255 - v) * 0.55) for v in fill)
    line = max(1, round(half / 14))
    if kind == "ring":
        thick = max(2, round(half * 0.38))
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), outline=fill, width=thick)
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), outline=dark, width=line)
        inner = half - thick
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), outline=dark, width=line)
        return
    polys = [_transform(p, cx, cy, half, obj.angle, obj.mirror) for p in _unit_shape(kind)]
    draw.polygon(polys[0], fill=fill, outline=dark, width=line)
    if kind == "house":
        draw.polygon(polys[1], fill=dark)
    elif kind == "tree":
        draw.polygon(polys[1], fill=(100, 65, 35), outline=(50, 30, 15), width=line)
        draw.polygon(polys[0], fill=fill, outline=dark, width=line)  # the crown over the trunk
    elif kind == "boat":
        draw.polygon(polys[2], fill=dark)
        draw.polygon(polys[1], fill=light, outline=dark, width=line)
    elif kind == "fish":
        draw.polygon(polys[1], fill=fill, outline=dark, width=line)
        ex, ey = _transform([(-0.5, -0.1)], cx, cy, half, obj.angle, obj.mirror)[0]
        r = max(1.0, half * 0.08)
        draw.ellipse((ex - r, ey - r, ex + r, ey + r), fill=(10, 10, 10))
    elif kind == "car":
        for wx in (-0.55, 0.55):
            px, py = _transform([(wx, 0.5)], cx, cy, half, obj.angle, obj.mirror)[0]
            r = half * 0.22
            draw.ellipse((px - r, py - r, px + r, py + r), fill=(25, 25, 25), outline=(90, 90, 90))
        window = _transform(
            [(-0.25, -0.35), (0.3, -0.35), (0.45, -0.05), (-0.4, -0.05)], cx, cy, half, obj.angle, obj.mirror
        )
        draw.polygon(window, fill=(190, 220, 240), outline=dark)


def render(spec: Spec, size: tuple[int, int] | None = None) -> Image.Image:
    """The picture for a spec (RGB, noise and blur applied; JPEG/WebP artefacts come when it is saved).

    ``size`` renders the same scene at another pixel size (training renders small pictures fast).
    """
    w, h = size or (spec.width, spec.height)
    rng = np.random.default_rng(spec.texture_seed)
    image = _background(spec.background, w, h, rng)
    draw = ImageDraw.Draw(image)
    for obj in spec.objects:
        _draw_object(draw, spec.kind, obj, w, h)
    radius = spec.blur * w / 320
    if radius > 0.25:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    if spec.noise > 0.5:
        arr = np.asarray(image, np.float32) + rng.normal(0, spec.noise, (h, w, 3)).astype(np.float32)
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return image


def _exif(date: datetime) -> Image.Exif:
    exif = Image.Exif()
    stamp = date.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0110] = "World Camera"  # Model
    exif[0x0132] = stamp  # DateTime
    exif.get_ifd(0x8769)[0x9003] = stamp  # DateTimeOriginal, in the Exif IFD
    return exif


def encode(spec: Spec, image: Image.Image) -> bytes:
    """The file's bytes: JPEG and WebP carry EXIF DateTimeOriginal; PNG carries none."""
    buffer = io.BytesIO()
    if spec.fmt == "jpeg":
        image.save(buffer, "JPEG", quality=spec.quality, exif=_exif(spec.date).tobytes())
    elif spec.fmt == "webp":
        image.save(buffer, "WEBP", quality=spec.quality, method=4, exif=_exif(spec.date).tobytes())
    else:
        image.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def degrade(spec: Spec, image: Image.Image) -> Image.Image:
    """The picture as its file would decode (JPEG/WebP artefacts), without writing it."""
    if spec.fmt == "png":
        return image
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if spec.fmt == "jpeg" else "WEBP", quality=spec.quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


# ------------------------------------------------------------------------------------------ language
# Per language: kind nouns with what agreement needs, colour adjectives, background phrases, templates.

_EN_KINDS = {k: (k, k + "s") for k in KINDS} | {"cross": ("cross", "crosses"), "fish": ("fish", "fish")}
_EN_BG = {
    "sky": ("in the sky", "against the sky"),
    "sea": ("at sea", "on the sea"),
    "grass": ("on the grass", "on a lawn"),
    "sand": ("on the sand", "on the beach"),
    "snow": ("in the snow", "on snow"),
    "night": ("at night", "in the night"),
}


def english_names(token: str) -> tuple[str, ...]:
    """English names of a kind (singular, plural), a colour, or a background (its phrases: "in the sky", ...).

    The world's vocabulary of zero-shot labels (gallery/vocabulary.py) names its concepts with them.
    """
    if token in _EN_KINDS:
        return tuple(dict.fromkeys(_EN_KINDS[token]))
    if token in _EN_BG:
        return _EN_BG[token]
    if token in COLOURS:
        return (token,)
    raise KeyError(token)


# German: (singular, plural, gender, dative singular)
_DE_KINDS = {
    "circle": ("Kreis", "Kreise", "m", "Kreis"),
    "square": ("Quadrat", "Quadrate", "n", "Quadrat"),
    "triangle": ("Dreieck", "Dreiecke", "n", "Dreieck"),
    "star": ("Stern", "Sterne", "m", "Stern"),
    "heart": ("Herz", "Herzen", "n", "Herzen"),
    "cross": ("Kreuz", "Kreuze", "n", "Kreuz"),
    "ring": ("Ring", "Ringe", "m", "Ring"),
    "house": ("Haus", "Häuser", "n", "Haus"),
    "tree": ("Baum", "Bäume", "m", "Baum"),
    "boat": ("Boot", "Boote", "n", "Boot"),
    "fish": ("Fisch", "Fische", "m", "Fisch"),
    "car": ("Auto", "Autos", "n", "Auto"),
}
_DE_COLOURS = {
    "red": "rot",
    "orange": "orangefarben",
    "yellow": "gelb",
    "green": "grün",
    "blue": "blau",
    "purple": "violett",
    "pink": "rosafarben",
    "white": "weiß",
}
_DE_BG = {
    "sky": ("am Himmel",),
    "sea": ("auf dem Meer", "auf See"),
    "grass": ("auf dem Rasen", "im Gras"),
    "sand": ("am Strand", "im Sand"),
    "snow": ("im Schnee",),
    "night": ("bei Nacht", "in der Nacht"),
}

# French: (singular, plural, gender)
_FR_KINDS = {
    "circle": ("cercle", "cercles", "m"),
    "square": ("carré", "carrés", "m"),
    "triangle": ("triangle", "triangles", "m"),
    "star": ("étoile", "étoiles", "f"),
    "heart": ("cœur", "cœurs", "m"),
    "cross": ("croix", "croix", "f"),
    "ring": ("anneau", "anneaux", "m"),
    "house": ("maison", "maisons", "f"),
    "tree": ("arbre", "arbres", "m"),
    "boat": ("bateau", "bateaux", "m"),
    "fish": ("poisson", "poissons", "m"),
    "car": ("voiture", "voitures", "f"),
}
# (m, f, m plural, f plural)
_FR_COLOURS = {
    "red": ("rouge", "rouge", "rouges", "rouges"),
    "orange": ("orange", "orange", "orange", "orange"),
    "yellow": ("jaune", "jaune", "jaunes", "jaunes"),
    "green": ("vert", "verte", "verts", "vertes"),
    "blue": ("bleu", "bleue", "bleus", "bleues"),
    "purple": ("violet", "violette", "violets", "violettes"),
    "pink": ("rose", "rose", "roses", "roses"),
    "white": ("blanc", "blanche", "blancs", "blanches"),
}
_FR_BG = {
    "sky": ("dans le ciel",),
    "sea": ("sur la mer", "en mer"),
    "grass": ("sur l'herbe", "sur la pelouse"),
    "sand": ("sur le sable", "à la plage"),
    "snow": ("dans la neige", "sur la neige"),
    "night": ("la nuit", "de nuit"),
}

_ES_KINDS = {
    "circle": ("círculo", "círculos", "m"),
    "square": ("cuadrado", "cuadrados", "m"),
    "triangle": ("triángulo", "triángulos", "m"),
    "star": ("estrella", "estrellas", "f"),
    "heart": ("corazón", "corazones", "m"),
    "cross": ("cruz", "cruces", "f"),
    "ring": ("anillo", "anillos", "m"),
    "house": ("casa", "casas", "f"),
    "tree": ("árbol", "árboles", "m"),
    "boat": ("barco", "barcos", "m"),
    "fish": ("pez", "peces", "m"),
    "car": ("coche", "coches", "m"),
}
_ES_COLOURS = {
    "red": ("rojo", "roja", "rojos", "rojas"),
    "orange": ("naranja", "naranja", "naranjas", "naranjas"),
    "yellow": ("amarillo", "amarilla", "amarillos", "amarillas"),
    "green": ("verde", "verde", "verdes", "verdes"),
    "blue": ("azul", "azul", "azules", "azules"),
    "purple": ("morado", "morada", "morados", "moradas"),
    "pink": ("rosa", "rosa", "rosas", "rosas"),
    "white": ("blanco", "blanca", "blancos", "blancas"),
}
_ES_BG = {
    "sky": ("en el cielo",),
    "sea": ("en el mar",),
    "grass": ("en la hierba", "sobre el césped"),
    "sand": ("en la arena", "en la playa"),
    "snow": ("en la nieve",),
    "night": ("de noche", "por la noche"),
}

# Chinese: (noun, measure word)
_ZH_KINDS = {
    "circle": ("圆形", "个"),
    "square": ("正方形", "个"),
    "triangle": ("三角形", "个"),
    "star": ("星星", "颗"),
    "heart": ("爱心", "颗"),
    "cross": ("十字", "个"),
    "ring": ("圆环", "个"),
    "house": ("房子", "座"),
    "tree": ("树", "棵"),
    "boat": ("船", "艘"),
    "fish": ("鱼", "条"),
    "car": ("汽车", "辆"),
}
_ZH_COLOURS = {
    "red": "红色",
    "orange": "橙色",
    "yellow": "黄色",
    "green": "绿色",
    "blue": "蓝色",
    "purple": "紫色",
    "pink": "粉色",
    "white": "白色",
}
_ZH_NUM = {1: "一", 2: "两", 3: "三"}
_ZH_BG = {
    "sky": ("天空中", "空中"),
    "sea": ("海上", "海面上"),
    "grass": ("草地上",),
    "sand": ("沙滩上", "沙子上"),
    "snow": ("雪地里", "雪地上"),
    "night": ("夜晚", "夜里"),
}

# Japanese: (noun, counter)
_JA_KINDS = {
    "circle": ("丸", "つ"),
    "square": ("四角形", "つ"),
    "triangle": ("三角形", "つ"),
    "star": ("星", "つ"),
    "heart": ("ハート", "つ"),
    "cross": ("十字", "つ"),
    "ring": ("リング", "つ"),
    "house": ("家", "軒"),
    "tree": ("木", "本"),
    "boat": ("船", "艘"),
    "fish": ("魚", "匹"),
    "car": ("車", "台"),
}
_JA_COLOURS = {
    "red": "赤い",
    "orange": "オレンジ色の",
    "yellow": "黄色い",
    "green": "緑の",
    "blue": "青い",
    "purple": "紫の",
    "pink": "ピンクの",
    "white": "白い",
}
_JA_NUM = {1: "一", 2: "二", 3: "三"}
# (attributive "..の", locative "..に")
_JA_BG = {
    "sky": ("空の", "空に"),
    "sea": ("海の", "海に"),
    "grass": ("芝生の上の", "芝生の上に"),
    "sand": ("砂浜の", "砂浜に"),
    "snow": ("雪の中の", "雪の中に"),
    "night": ("夜の", "夜に"),
}

# Arabic: (singular, dual, broken/sound plural, gender)
_AR_KINDS = {
    "circle": ("دائرة", "دائرتان", "دوائر", "f"),
    "square": ("مربع", "مربعان", "مربعات", "m"),
    "triangle": ("مثلث", "مثلثان", "مثلثات", "m"),
    "star": ("نجمة", "نجمتان", "نجوم", "f"),
    "heart": ("قلب", "قلبان", "قلوب", "m"),
    "cross": ("صليب", "صليبان", "صلبان", "m"),
    "ring": ("حلقة", "حلقتان", "حلقات", "f"),
    "house": ("بيت", "بيتان", "بيوت", "m"),
    "tree": ("شجرة", "شجرتان", "أشجار", "f"),
    "boat": ("قارب", "قاربان", "قوارب", "m"),
    "fish": ("سمكة", "سمكتان", "أسماك", "f"),
    "car": ("سيارة", "سيارتان", "سيارات", "f"),
}
# (m, f, m dual, f dual); plurals of things agree in the feminine singular
_AR_COLOURS = {
    "red": ("أحمر", "حمراء", "أحمران", "حمراوان"),
    "orange": ("برتقالي", "برتقالية", "برتقاليان", "برتقاليتان"),
    "yellow": ("أصفر", "صفراء", "أصفران", "صفراوان"),
    "green": ("أخضر", "خضراء", "أخضران", "خضراوان"),
    "blue": ("أزرق", "زرقاء", "أزرقان", "زرقاوان"),
    "purple": ("بنفسجي", "بنفسجية", "بنفسجيان", "بنفسجيتان"),
    "pink": ("وردي", "وردية", "ورديان", "ورديتان"),
    "white": ("أبيض", "بيضاء", "أبيضان", "بيضاوان"),
}
_AR_BG = {
    "sky": ("في السماء",),
    "sea": ("في البحر", "على سطح البحر"),
    "grass": ("على العشب",),
    "sand": ("على الرمل", "على الشاطئ"),
    "snow": ("في الثلج", "على الثلج"),
    "night": ("في الليل", "ليلاً"),
}

# Russian: (nominative singular, genitive singular, gender)
_RU_KINDS = {
    "circle": ("круг", "круга", "m"),
    "square": ("квадрат", "квадрата", "m"),
    "triangle": ("треугольник", "треугольника", "m"),
    "star": ("звезда", "звезды", "f"),
    "heart": ("сердце", "сердца", "n"),
    "cross": ("крест", "креста", "m"),
    "ring": ("кольцо", "кольца", "n"),
    "house": ("дом", "дома", "m"),
    "tree": ("дерево", "дерева", "n"),
    "boat": ("лодка", "лодки", "f"),
    "fish": ("рыба", "рыбы", "f"),
    "car": ("машина", "машины", "f"),
}
# (m, f, n, nominative plural, genitive plural)
_RU_COLOURS = {
    "red": ("красный", "красная", "красное", "красные", "красных"),
    "orange": ("оранжевый", "оранжевая", "оранжевое", "оранжевые", "оранжевых"),
    "yellow": ("жёлтый", "жёлтая", "жёлтое", "жёлтые", "жёлтых"),
    "green": ("зелёный", "зелёная", "зелёное", "зелёные", "зелёных"),
    "blue": ("синий", "синяя", "синее", "синие", "синих"),
    "purple": ("фиолетовый", "фиолетовая", "фиолетовое", "фиолетовые", "фиолетовых"),
    "pink": ("розовый", "розовая", "розовое", "розовые", "розовых"),
    "white": ("белый", "белая", "белое", "белые", "белых"),
}
_RU_BG = {
    "sky": ("в небе",),
    "sea": ("в море", "на море"),
    "grass": ("на траве",),
    "sand": ("на песке", "на пляже"),
    "snow": ("на снегу", "в снегу"),
    "night": ("ночью",),
}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _en(kind, colour, count, background, rng):
    sg, pl = _EN_KINDS[kind]
    adj = f"{colour} " if colour else ""
    if count is None:
        head = f"{adj}{sg}"
        np_ = ("an " if head[0] in "aeiou" else "a ") + head
    elif count == 1:
        np_ = f"{_pick(rng, ('one', 'a single'))} {adj}{sg}"
    else:
        np_ = f"{('two', 'three')[count - 2]} {adj}{pl}"
    if background is None:
        return _pick(rng, ("{np}", "a photo of {np}", "a picture of {np}", "an image of {np}")).format(np=np_)
    bg = _pick(rng, _EN_BG[background])
    template = _pick(rng, ("{np} {bg}", "a photo of {np} {bg}", "{bg}, {np}", "an image with {np} {bg}"))
    return template.format(np=np_, bg=bg)


def _de(kind, colour, count, background, rng):
    sg, pl, gender, dat_sg = _DE_KINDS[kind]
    stem = _DE_COLOURS[colour] if colour else None
    strong = {"m": "er", "n": "es", "f": "e"}[gender]
    article = "eine" if gender == "f" else "ein"
    dat_article = "einer" if gender == "f" else "einem"
    pl_dat = pl if pl.endswith(("n", "s")) else pl + "n"
    adj_nom = f"{stem}{strong} " if stem else ""
    adj_dat = f"{stem}en " if stem else ""
    if count is None:
        nom, dat = f"{article} {adj_nom}{sg}", f"{dat_article} {adj_dat}{dat_sg}"
    elif count == 1:
        nom = f"{article} einzeln{strong} {adj_nom}{sg}"
        dat = f"{dat_article} einzelnen {adj_dat}{dat_sg}"
    else:
        number = ("zwei", "drei")[count - 2]
        nom = f"{number} {stem + 'e ' if stem else ''}{pl}"
        dat = f"{number} {adj_dat}{pl_dat}"
    if background is None:
        return _pick(rng, ("{nom}", "ein Foto von {dat}", "ein Bild mit {dat}")).format(nom=nom, dat=dat)
    bg = _pick(rng, _DE_BG[background])
    template = _pick(rng, ("{nom} {bg}", "ein Foto von {dat} {bg}", "{bg}: {nom}", "ein Bild mit {dat} {bg}"))
    return template.format(nom=nom, dat=dat, bg=bg)


def _romance(lang, kind, colour, count, background, rng):
    kinds, colours = (_FR_KINDS, _FR_COLOURS) if lang == "fr" else (_ES_KINDS, _ES_COLOURS)
    sg, pl, gender = kinds[kind]
    f = gender == "f"
    if count is None or count == 1:
        adj = f" {colours[colour][1 if f else 0]}" if colour else ""
        if lang == "fr":
            article = ("une" if f else "un") + (f" {'seule' if f else 'seul'}" if count == 1 else "")
        else:
            article = ("una" if f else "un") + (f" {'sola' if f else 'solo'}" if count == 1 else "")
        np_ = f"{article} {sg}{adj}"
    else:
        adj = f" {colours[colour][3 if f else 2]}" if colour else ""
        numbers = ("deux", "trois") if lang == "fr" else ("dos", "tres")
        np_ = f"{numbers[count - 2]} {pl}{adj}"
    if lang == "fr":
        of = ("d'" if np_.startswith("un") else "de ") + np_
        plain = ("{np}", "une photo {of}", "une image avec {np}")
        with_bg = ("{np} {bg}", "une photo {of} {bg}", "{bg}, {np}", "une image avec {np} {bg}")
        bgs = _FR_BG
    else:
        of = "de " + np_
        plain = ("{np}", "una foto {of}", "una imagen con {np}")
        with_bg = ("{np} {bg}", "una foto {of} {bg}", "{bg}, {np}", "una imagen con {np} {bg}")
        bgs = _ES_BG
    if background is None:
        return _pick(rng, plain).format(np=np_, of=of)
    return _pick(rng, with_bg).format(np=np_, of=of, bg=_pick(rng, bgs[background]))


def _zh(kind, colour, count, background, rng):
    noun, measure = _ZH_KINDS[kind]
    adj = (_ZH_COLOURS[colour] + _pick(rng, ("的", ""))) if colour else ""
    np_ = (f"{_ZH_NUM[count]}{measure}" if count else "") + adj + noun
    if background is None:
        return _pick(rng, ("{np}", "{np}的照片", "一张{np}的照片")).format(np=np_)
    bg = _pick(rng, _ZH_BG[background])
    return _pick(rng, ("{bg}的{np}", "{bg}有{np}", "一张{bg}的{np}的照片", "照片:{bg}的{np}")).format(np=np_, bg=bg)


def _ja(kind, colour, count, background, rng):
    noun, counter = _JA_KINDS[kind]
    head = (_JA_COLOURS[colour] if colour else "") + noun
    amount = f"{_JA_NUM[count]}{counter}" if count else ""
    np_ = f"{amount}の{head}" if count else head
    predicate = f"{head}が{amount}" if count else head
    if background is None:
        return _pick(rng, ("{np}", "{np}の写真", "{pred}")).format(np=np_, pred=predicate)
    attributive, locative = _JA_BG[background]
    template = _pick(rng, ("{att}{np}", "{att}{np}の写真", "{loc}{pred}"))
    return template.format(np=np_, pred=predicate, att=attributive, loc=locative)


def _ar(kind, colour, count, background, rng):
    sg, dual, pl, gender = _AR_KINDS[kind]
    m, f, m2, f2 = _AR_COLOURS[colour] if colour else ("", "", "", "")
    fem = gender == "f"
    if count is None:
        np_ = f"{sg} {f if fem else m}".strip()
    elif count == 1:
        np_ = " ".join(x for x in (sg, f if fem else m, "واحدة" if fem else "واحد") if x)
    elif count == 2:
        np_ = f"{dual} {f2 if fem else m2}".strip()
    else:
        # 3 takes the opposite gender of the singular noun; plurals of things take feminine singular adjectives.
        np_ = f"{'ثلاث' if fem else 'ثلاثة'} {pl} {f}".strip()
    if background is None:
        return _pick(rng, ("{np}", "صورة فيها {np}")).format(np=np_)
    bg = _pick(rng, _AR_BG[background])
    return _pick(rng, ("{np} {bg}", "صورة فيها {np} {bg}", "{bg} {np}")).format(np=np_, bg=bg)


def _ru(kind, colour, count, background, rng):
    nom, gen, gender = _RU_KINDS[kind]
    forms = _RU_COLOURS[colour] if colour else None
    if count is None or count == 1:
        adj = forms["mfn".index(gender)] + " " if forms else ""
        one = {"m": "один ", "f": "одна ", "n": "одно "}[gender] if count == 1 else ""
        np_ = f"{one}{adj}{nom}"
    else:
        number = {2: "две" if gender == "f" else "два", 3: "три"}[count]
        # After 2-4: genitive singular noun; adjectives genitive plural (m, n) or nominative plural (f).
        adj = (forms[3] if gender == "f" else forms[4]) + " " if forms else ""
        np_ = f"{number} {adj}{gen}"
    if background is None:
        return _pick(rng, ("{np}", "фото: {np}", "на снимке {np}")).format(np=np_)
    bg = _pick(rng, _RU_BG[background])
    return _pick(rng, ("{np} {bg}", "{bg} {np}", "на фото {np} {bg}", "фото: {np} {bg}")).format(np=np_, bg=bg)


def phrase(
    language: str,
    rng: np.random.Generator,
    *,
    kind: str,
    colour: str | None = None,
    count: int | None = None,
    background: str | None = None,
) -> str:
    """A natural phrase in ``language`` naming the given attributes (None: not said); rng picks the wording."""
    if language == "en":
        return _en(kind, colour, count, background, rng)
    if language == "de":
        return _de(kind, colour, count, background, rng)
    if language in ("fr", "es"):
        return _romance(language, kind, colour, count, background, rng)
    if language == "zh":
        return _zh(kind, colour, count, background, rng)
    if language == "ja":
        return _ja(kind, colour, count, background, rng)
    if language == "ar":
        return _ar(kind, colour, count, background, rng)
    if language == "ru":
        return _ru(kind, colour, count, background, rng)
    raise ValueError(f"unknown language {language!r}")


def query_labels(
    *, kind: str, colour: str | None = None, count: int | None = None, background: str | None = None
) -> tuple[str, ...]:
    """The label tokens a phrase asserts: every picture whose labels include them all is relevant."""
    tokens = [kind]
    if colour:
        tokens += [colour, f"{colour}-{kind}"]
    if background:
        tokens.append(f"background:{background}")
    if count:
        tokens.append(f"count:{count}")
    return tuple(tokens)


def caption(spec: Spec, rng: np.random.Generator, language: str | None = None) -> tuple[str, str, tuple[str, ...]]:
    """A random caption for a picture: (text, language, the label tokens the text asserts).

    The kind is always said; colour, background and count only sometimes, so captions range from
    "a star" to "a photo of two red stars on the beach".
    """
    language = language or LANGUAGES[int(rng.integers(len(LANGUAGES)))]
    attrs = {
        "kind": spec.kind,
        "colour": spec.colour if rng.random() < 0.8 else None,
        "background": spec.background if rng.random() < 0.5 else None,
        "count": spec.count if rng.random() < 0.4 else None,
    }
    return phrase(language, rng, **attrs), language, query_labels(**attrs)


def captions(spec: Spec, seed: int = 0) -> dict[str, str]:
    """One full caption (kind, colour, count, background) per language, deterministic for (spec, seed)."""
    out = {}
    for language in LANGUAGES:
        rng = np.random.default_rng([seed, spec.index, LANGUAGES.index(language)])
        out[language] = phrase(
            language, rng, kind=spec.kind, colour=spec.colour, count=spec.count, background=spec.background
        )
    return out


@dataclass(frozen=True)
class Query:
    text: str
    language: str
    labels: tuple[str, ...]


def query_families() -> list[dict]:
    """Attribute sets queried: every kind; colour+kind; colour+kind+background; count+kind."""
    families: list[dict] = [{"kind": k} for k in KINDS]
    families += [{"kind": k, "colour": c} for k in KINDS for c in COLOURS]
    families += [{"kind": k, "colour": c, "background": b} for k in KINDS for c in COLOURS for b in BACKGROUNDS]
    families += [{"kind": k, "count": n} for k in KINDS for n in COUNTS]
    return families


def queries(seed: int = 0, languages: Sequence[str] = LANGUAGES) -> list[Query]:
    """The evaluation queries: each attribute set of ``query_families`` once per language, worded by ``seed``."""
    out = []
    for number, attrs in enumerate(query_families()):
        for language in languages:
            rng = np.random.default_rng([seed, number, LANGUAGES.index(language)])
            out.append(Query(phrase(language, rng, **attrs), language, query_labels(**attrs)))
    return out


def relevant(query_tokens: Iterable[str], picture_labels: Iterable[str]) -> bool:
    """A picture is relevant to a query when it carries every token the query asks for."""
    return set(query_tokens) <= set(picture_labels)


# ------------------------------------------------------------------------------------------- writing


def make_world(
    directory: str | os.PathLike,
    *,
    count: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[Spec]:
    """Write ``count`` pictures for ``seed`` under ``directory``, with labels.csv and queries.csv beside them.

    The same (count, seed) gives the same bytes. queries.csv holds only queries with at least one
    relevant picture in this world, so every query's average precision is defined.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    specs = draw_specs(count, seed)
    for done, spec in enumerate(specs, 1):
        target = root / spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode(spec, render(spec)))
        stamp = spec.date.timestamp()
        os.utime(target, (stamp, stamp))
        if progress:
            progress(done, count)
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "labels"])
        for spec in specs:
            writer.writerow([spec.path, " ".join(spec.labels)])
    present = [set(spec.labels) for spec in specs]
    with open(root / "queries.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["query", "language", "labels"])
        for query in queries(seed):
            if any(set(query.labels) <= labels for labels in present):
                writer.writerow([query.text, query.language, " ".join(query.labels)])
    return specs


def read_labels(directory: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """labels.csv as {relative path: label tokens}."""
    with open(Path(directory) / "labels.csv", encoding="utf-8", newline="") as handle:
        return {row["path"]: tuple(row["labels"].split()) for row in csv.DictReader(handle)}


def read_queries(directory: str | os.PathLike) -> list[Query]:
    with open(Path(directory) / "queries.csv", encoding="utf-8", newline="") as handle:
        return [Query(row["query"], row["language"], tuple(row["labels"].split())) for row in csv.DictReader(handle)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m encoders.world", description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")

    def progress(done: int, total: int) -> None:
        if done % 200 == 0 or done == total:
            print(f"{done}/{total} pictures", file=sys.stderr)

    make_world(args.directory, count=args.count, seed=args.seed, progress=progress)
    print(f"wrote {args.count} pictures, labels.csv and queries.csv to {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
