"""Tux Paint stamps: real images with captions in ~90 languages and spoken captions.

Each stamp is a picture (a PNG photo or drawing, or an SVG clipart that is rasterised),
an English caption on the first line of ``NAME.txt`` followed by ``xx.utf8=…``
translations, spoken captions ``NAME_desc.ogg`` (English) and ``NAME_desc_xx.ogg``, and
sometimes a sound effect ``NAME.ogg``. Its category is the top-level folder and its
sub-category the path below it (``animals`` / ``mammals/cats``). ``*_mirror`` and
``*_flip`` files are pre-flipped copies of other stamps and are not stamps themselves.
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mmcourse.preprocessing.image import letterbox
from mmcourse.runtime import cache
from mmcourse.runtime.install import missing, stamps_dir

_VARIANT = re.compile(r"_(mirror|flip)")
_AUDIO = (".ogg", ".wav")
_PICTURES = (".png", ".webp", ".svg")
"""Picture suffixes, the first preferred when a stamp has several (``.webp`` pictures are
those of the offline bundle, :mod:`mmcourse.pack`)."""


class UnknownLanguageError(KeyError):
    """Raised when a stamp has no caption or spoken caption in the requested language."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Stamp:
    """One stamp. ``name`` is its path below the stamps folder without suffix."""

    name: str
    image_path: Path
    category: str
    subcategory: str
    caption: str
    captions: dict = field(repr=False)
    spoken: dict = field(repr=False)
    sound: Path | None = field(repr=False, default=None)

    @property
    def is_svg(self) -> bool:
        """True when the stamp has only an SVG picture."""
        return self.image_path.suffix == ".svg"

    def caption_in(self, lang: str) -> str:
        """The caption in language ``lang`` (``"en"``, ``"fr"``, ``"zh_CN"``, …)."""
        try:
            return self.captions[lang]
        except KeyError:
            raise UnknownLanguageError(
                f"{self.name} has no caption in {lang!r}; it has "
                f"{len(self.captions)}: {', '.join(sorted(self.captions))}") from None

    def spoken_path(self, lang: str = "en") -> Path:
        """Path of the spoken caption in ``lang``."""
        try:
            return self.spoken[lang]
        except KeyError:
            have = ", ".join(sorted(self.spoken)) or "none"
            raise UnknownLanguageError(
                f"{self.name} has no spoken caption in {lang!r}; it has: {have}") from None


class StampCollection(list):
    """A list of :class:`Stamp` with the count of files that could not be read."""

    def __init__(self, stamps, skipped: int = 0, root: Path | None = None):
        super().__init__(stamps)
        self.skipped = skipped
        self.root = root

    def categories(self) -> list[str]:
        """Sorted top-level categories present."""
        return sorted({s.category for s in self})

    def by_category(self, category: str) -> "StampCollection":
        """The stamps of one top-level category."""
        return StampCollection([s for s in self if s.category == category], 0, self.root)


def _parse_captions(text: str) -> dict:
    """Map language → caption from a stamp's ``.txt`` (line 1 is English)."""
    lines = text.splitlines()
    captions = {}
    if lines and lines[0].strip():
        captions["en"] = lines[0].strip()
    for line in lines[1:]:
        lang, sep, value = line.partition("=")
        if sep and lang.endswith(".utf8") and value.strip():
            captions[lang[: -len(".utf8")]] = value.strip()
    return captions


def _spoken_clips(folder: Path, stem: str) -> dict:
    """Map language → spoken-caption file for the stamp ``stem`` in ``folder``."""
    clips = {}
    prefix = f"{stem}_desc"
    for path in folder.iterdir():
        name = path.name
        if not name.startswith(prefix) or not name.endswith(_AUDIO):
            continue
        core = name[len(prefix):]
        while core.endswith(_AUDIO):  # one file is NAME_desc_da.ogg.ogg
            core = core[: -4]
        if core == "":
            clips.setdefault("en", path)
        elif core.startswith("_"):
            clips[core[1:]] = path
    return clips


def load_stamps(root: str | Path | None = None) -> StampCollection:
    """Read every stamp below ``root`` (default: the installed Tux Paint stamps).

    Returns a :class:`StampCollection` sorted by name. A stamp whose caption file cannot be
    decoded is skipped and counted in ``.skipped`` with a warning; nothing is replaced.
    Raises :class:`~mmcourse.runtime.install.DataNotFoundError` when the folder is missing.
    """
    root = Path(root) if root is not None else stamps_dir()
    if not root.is_dir():
        raise missing("stamps", root)
    pictures: dict[Path, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix in _PICTURES and not _VARIANT.search(path.stem):
            key = path.with_suffix("")
            if key not in pictures or (_PICTURES.index(path.suffix)
                                       < _PICTURES.index(pictures[key].suffix)):
                pictures[key] = path
    stamps, skipped = [], 0
    for key, image_path in sorted(pictures.items()):
        txt = key.with_suffix(".txt")
        try:
            captions = _parse_captions(txt.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            warnings.warn(f"skipping stamp {key.relative_to(root)}: {err}")
            skipped += 1
            continue
        if "en" not in captions:
            warnings.warn(f"skipping stamp {key.relative_to(root)}: no English caption")
            skipped += 1
            continue
        rel = key.relative_to(root)
        sound = next((key.with_suffix(s) for s in _AUDIO if key.with_suffix(s).exists()),
                     None)
        stamps.append(Stamp(
            name=rel.as_posix(), image_path=image_path, category=rel.parts[0],
            subcategory="/".join(rel.parts[1:-1]), caption=captions["en"],
            captions=captions, spoken=_spoken_clips(key.parent, key.name), sound=sound))
    if not stamps:
        raise missing("stamps", root, "The folder holds no stamps.")
    if skipped:
        warnings.warn(f"{skipped} stamp(s) could not be read and were skipped")
    return StampCollection(stamps, skipped, root)


def on_white(image: Image.Image) -> Image.Image:
    """Composite an image with transparency onto white; return RGB."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def rasterise_svg(path: Path, width: int) -> Image.Image:
    """Render an SVG to an RGBA image ``width`` pixels wide (cached on disk)."""
    cached = cache.path("svg", (path, path.stat().st_mtime_ns, width), ".png")
    if cached.exists():
        return Image.open(cached)
    try:
        import cairosvg
    except OSError as err:  # cairocffi raises OSError when libcairo is missing
        raise missing("cairo (SVG rasteriser)", detail=str(err)) from err
    # the packaged SVGs are trusted files; some declare internal XML entities
    png = cairosvg.svg2png(url=str(path), output_width=width, unsafe=True)
    image = Image.open(io.BytesIO(png))
    cache.write_atomically(cached, image.save)
    return image


def load_image(stamp: Stamp, svg_width: int = 512) -> Image.Image:
    """The stamp's picture as an RGB image, transparency composited on white.

    SVG-only stamps are rasterised ``svg_width`` pixels wide.
    """
    if stamp.is_svg:
        image = rasterise_svg(stamp.image_path, svg_width)
    else:
        image = Image.open(stamp.image_path)
    return on_white(image)


def image_array(stamps, size: int = 224) -> np.ndarray:
    """All stamps' pictures letterboxed to ``size``×``size`` on white: uint8 (N, size, size, 3).

    The array is cached on disk, keyed by the picture files and the size, because decoding
    ~950 large PNGs takes about a minute.
    """
    return cache.arrays("stamp-pictures", [size, *(s.image_path for s in stamps)], lambda: {
        "pixels": np.stack([np.asarray(letterbox(load_image(s), size)) for s in stamps])})["pixels"]
