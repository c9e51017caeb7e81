"""The parameters of remove.bg's ``POST /v1.0/removebg``, validated into one typed object.

Names, values and limits follow remove.bg's public API reference. Every refusal is
a :class:`RemoveBgError` with remove.bg's error code (``invalid_size``,
``invalid_roi``, ``multiple_sources``...), answered as 400 in their error shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import ImageColor

from .errors import APIError

#: size -> the most megapixels the output may have (None: the source's full resolution).
SIZES: dict[str, float | None] = {
    "preview": 0.25, "small": 0.25, "regular": 0.25, "medium": 1.5, "hd": 4.0,
    "full": None, "4k": None, "auto": None, "50mp": None,
}
TYPES = ("auto", "person", "product", "car", "animal", "graphic", "transportation")
TYPE_LEVELS = ("none", "1", "2", "latest")
FORMATS = ("auto", "png", "jpg", "jpeg", "webp", "zip")
CHANNELS = ("rgba", "alpha")
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
#: remove.bg's limits on crop_margin, per side.
MAX_MARGIN_PX = 500
MAX_MARGIN_PERCENT = 50.0
IMAGE_SOURCES = ("image_file", "image_file_b64", "image_url")
BACKGROUND_SOURCES = ("bg_color", "bg_image_file", "bg_image_url")
#: Every parameter this endpoint reads; others are ignored, as remove.bg does.
KNOWN = (*IMAGE_SOURCES, "size", "type", "type_level", "format", "roi", "crop", "crop_margin", "scale",
         "position", "channels", *BACKGROUND_SOURCES, "add_shadow", "semitransparency", "shadow_type",
         "shadow_opacity", "shadow_method")
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_LENGTH = re.compile(rf"^{_NUMBER}(px|%)?$")
_HEX = re.compile(r"^#?([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$")


class RemoveBgError(APIError):
    """A refusal in remove.bg's terms: their ``code`` and ``title``, our ``detail``."""

    def __init__(self, code: str, title: str, detail: str, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        Exception.__init__(self, detail)
        self.code, self.title, self.message, self.status = code, title, detail, status
        self.headers = headers or {}


def invalid(name: str, detail: str) -> RemoveBgError:
    return RemoveBgError(f"invalid_{name}", f"Invalid {name} parameter given", detail)


@dataclass(frozen=True)
class Length:
    """A length in pixels or in percent of a reference."""

    value: float
    percent: bool

    def pixels(self, reference: float) -> float:
        return self.value / 100.0 * reference if self.percent else self.value


@dataclass(frozen=True)
class Roi:
    """``roi``: x1 y1 x2 y2, each in px or % of the image's width / height."""

    x1: Length
    y1: Length
    x2: Length
    y2: Length

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in source pixels, or the refusal remove.bg gives."""
        x1, x2 = (round(v.pixels(width)) for v in (self.x1, self.x2))
        y1, y2 = (round(v.pixels(height)) for v in (self.y1, self.y2))
        if x2 > width or y2 > height:
            raise RemoveBgError("roi_exceeds_bounds", "ROI exceeds image bounds",
                                f"the roi ({x1} {y1} {x2} {y2} px) reaches beyond the {width}x{height} image")
        if x2 <= x1 or y2 <= y1:
            raise RemoveBgError("roi_region_empty", "ROI region is empty",
                                f"the roi ({x1} {y1} {x2} {y2} px) is empty: x2 must exceed x1 and y2 exceed y1")
        return x1, y1, x2, y2


@dataclass(frozen=True)
class Position:
    """``position``: ``original``, ``center``, or x and y in % (0 = left/top, 100 = right/bottom) or px."""

    kind: str  # "original" | "at"
    x: Length = Length(50, True)
    y: Length = Length(50, True)


@dataclass(frozen=True)
class RemoveBgParams:
    """One request's parameters, validated. Lengths are unresolved until the image size is known."""

    size: str = "preview"
    max_megapixels: float | None = 0.25
    type: str = "auto"
    type_level: str = "1"
    format: str = "auto"
    roi: Roi | None = None
    crop: bool = False
    crop_margin: tuple[Length, Length, Length, Length] = (Length(0, False),) * 4  # top, right, bottom, left
    scale: float | None = None  # fraction of the canvas; None: original
    position: Position = Position("original")
    channels: str = "rgba"
    bg_color: tuple[int, int, int, int] | None = None
    add_shadow: bool = False
    semitransparency: bool = True
    image_url: str | None = None
    bg_image_url: str | None = None

    @property
    def image_format(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format


def _choice(name: str, value: str, choices: tuple[str, ...] | dict) -> str:
    key = value.strip().lower()
    if key not in choices:
        raise invalid(name, f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return key


def _boolean(name: str, value: str) -> bool:
    key = value.strip().lower()
    if key not in BOOLEANS:
        raise invalid(name, f"{name} must be true or false; got {value!r}")
    return BOOLEANS[key]


def _length(name: str, token: str, bare_percent: bool = False) -> Length:
    match = _LENGTH.match(token.strip().lower())
    if match is None:
        raise invalid(name, f"{name}: {token!r} is not a length; use pixels (30px) or a percentage (10%)")
    unit = match.group(2)
    return Length(float(match.group(1)), unit == "%" or (unit is None and bare_percent))


def parse_roi(value: str) -> Roi:
    tokens = value.split()
    if len(tokens) != 4:
        raise invalid("roi", f"roi must be four values 'x1 y1 x2 y2' in px or %, e.g. '0% 0% 100% 100%'; got {value!r}")
    x1, y1, x2, y2 = (_length("roi", t) for t in tokens)
    for v in (x1, y1, x2, y2):
        if v.percent and v.value > 100:
            raise RemoveBgError("roi_exceeds_bounds", "ROI exceeds image bounds", f"roi percentages go up to 100%; got {value!r}")
    return Roi(x1, y1, x2, y2)


def parse_crop_margin(value: str) -> tuple[Length, Length, Length, Length]:
    """One value (all sides), two (top/bottom, left/right) or four (top, right, bottom, left)."""
    tokens = value.split()
    if len(tokens) not in (1, 2, 4):
        raise invalid("crop_margin", f"crop_margin takes 1, 2 or 4 values (e.g. '30px' or '10% 20px'); got {value!r}")
    lengths = [_length("crop_margin", t) for t in tokens]
    for v in lengths:
        if v.value > (MAX_MARGIN_PERCENT if v.percent else MAX_MARGIN_PX):
            raise invalid("crop_margin", f"crop_margin is at most {MAX_MARGIN_PERCENT:g}% of the subject or "
                          f"{MAX_MARGIN_PX}px per side; got {value!r}")
    if len(lengths) == 1:
        return (lengths[0],) * 4  # type: ignore[return-value]
    if len(lengths) == 2:
        return lengths[0], lengths[1], lengths[0], lengths[1]
    return lengths[0], lengths[1], lengths[2], lengths[3]


def parse_scale(value: str) -> float | None:
    text = value.strip().lower()
    if text == "original":
        return None
    match = re.fullmatch(rf"{_NUMBER}%", text)
    if match is None or not 10 <= float(match.group(1)) <= 100:
        raise invalid("scale", f"scale must be 'original' or from 10% to 100%; got {value!r}")
    return float(match.group(1)) / 100.0


def parse_position(value: str) -> Position:
    text = value.strip().lower()
    if text in ("original", "center", "centre"):
        return Position("original" if text == "original" else "at")
    tokens = text.split()
    if len(tokens) not in (1, 2):
        raise invalid("position", f"position is 'original', 'center', or one or two values in % (or px); got {value!r}")
    lengths = [_length("position", t, bare_percent=True) for t in tokens]
    if any(v.percent and v.value > 100 for v in lengths):
        raise invalid("position", f"position percentages go from 0% to 100%; got {value!r}")
    return Position("at", lengths[0], lengths[-1])


def parse_color(value: str) -> tuple[int, int, int, int]:
    """Hex (3, 4, 6 or 8 digits, '#' optional; 4 and 8 carry alpha) or a CSS colour name -> RGBA."""
    text = value.strip().lower()
    match = _HEX.match(text)
    if match:
        digits = match.group(1)
        if len(digits) <= 4:
            digits = "".join(c * 2 for c in digits)
        rgba = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
        return (*rgba, 255)[:4]  # type: ignore[return-value]
    try:
        rgb = ImageColor.getrgb(text)
        if not all(0 <= c <= 255 for c in rgb):  # rgb(999,0,0) parses, but is no colour
            raise ValueError
    except ValueError:
        raise RemoveBgError("invalid_bg_color", "Invalid bg_color parameter given",
                            f"bg_color must be a hex colour (81d4fa, fff, 81d4fa77) or a colour name (green); got {value!r}") from None
    return (*rgb, 255)[:4]  # type: ignore[return-value]


def _one_of(sources: tuple[str, ...], given: set[str], code: str, title: str) -> None:
    present = [s for s in sources if s in given]
    if len(present) > 1:
        raise RemoveBgError(code, title, f"{' and '.join(present)} were both given; send only one of {', '.join(sources)}")


def parse_params(fields: dict[str, str], files: set[str]) -> RemoveBgParams:
    """Validate the request's text fields (``files``: names of the file parts present).

    Empty values count as absent, as remove.bg's clients send them for unset options.
    """
    f = {k: v for k, v in fields.items() if k in KNOWN and v.strip() != ""}
    given = set(f) | files
    _one_of(IMAGE_SOURCES, given, "multiple_sources", "Multiple image sources given")
    _one_of(BACKGROUND_SOURCES, given, "multiple_bg_sources", "Multiple background sources given")
    if not any(s in given for s in IMAGE_SOURCES):
        raise RemoveBgError("missing_source", "No image given",
                            "send the image as image_file (a file part), image_file_b64 (base64) or image_url")
    size = _choice("size", f.get("size", "preview"), SIZES)
    scale = parse_scale(f["scale"]) if "scale" in f else None
    # Scaling the subject implies position=center unless a position is given.
    position = parse_position(f["position"]) if "position" in f else Position("at" if scale else "original")
    return RemoveBgParams(
        size=size, max_megapixels=SIZES[size],
        type=_choice("type", f.get("type", "auto"), TYPES),
        type_level=_choice("type_level", f.get("type_level", "1"), TYPE_LEVELS),
        format=_choice("format", f.get("format", "auto"), FORMATS),
        roi=parse_roi(f["roi"]) if "roi" in f else None,
        crop=_boolean("crop", f.get("crop", "false")),
        crop_margin=parse_crop_margin(f["crop_margin"]) if "crop_margin" in f else RemoveBgParams.crop_margin,
        scale=scale, position=position,
        channels=_choice("channels", f.get("channels", "rgba"), CHANNELS),
        bg_color=parse_color(f["bg_color"]) if "bg_color" in f else None,
        add_shadow=_boolean("add_shadow", f.get("add_shadow", "false")),
        semitransparency=_boolean("semitransparency", f.get("semitransparency", "true")),
        image_url=f.get("image_url"), bg_image_url=f.get("bg_image_url"),
    )
