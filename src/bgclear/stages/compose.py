"""Stage 6 — compose: foreground + alpha in, the picture the user asked for out.

Backgrounds (transparent or a solid colour), a soft drop shadow and cropping
to the subject. Everything is straight (non-premultiplied) sRGB uint8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
}
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_color(value: str | tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    """``None`` / ``"transparent"`` -> ``None``; ``"#rrggbb"``, ``"rgb"`` hex or a name -> (r, g, b)."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) == 3 and all(isinstance(c, (int, np.integer)) and 0 <= c <= 255 for c in value):
            return tuple(int(c) for c in value)  # type: ignore[return-value]
        raise InputError("invalid_option", f"a colour tuple must be three integers 0..255, got {value!r}")
    text = str(value).strip().lower()
    if text in ("", "transparent", "none"):
        return None
    if text in NAMED_COLORS:
        return NAMED_COLORS[text]
    match = _HEX.match(text)
    if not match:
        names = ", ".join(sorted(NAMED_COLORS))
        raise InputError("invalid_option", f"unknown colour {value!r}: use #rrggbb, 'transparent' or one of {names}")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


@dataclass(frozen=True)
class Shadow:
    """A soft drop shadow. Offsets and blur are fractions of the image's long edge."""

    opacity: float = 0.15
    offset_x: float = 0.01
    offset_y: float = 0.015
    blur: float = 0.015

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise InputError("invalid_option", f"shadow opacity must be in 0..1, got {self.opacity}")
        if not 0.0 <= self.blur <= 0.5 or abs(self.offset_x) > 0.5 or abs(self.offset_y) > 0.5:
            raise InputError("invalid_option", "shadow offset and blur are fractions of the long edge (at most 0.5)")


def shadow_alpha(alpha: np.ndarray, shadow: Shadow) -> np.ndarray:
    """The shadow's coverage: alpha shifted, blurred and scaled by opacity (float32 (H, W))."""
    h, w = alpha.shape
    long_edge = max(h, w)
    dx, dy = shadow.offset_x * long_edge, shadow.offset_y * long_edge
    shifted = cv2.warpAffine(alpha, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderValue=0)
    sigma = shadow.blur * long_edge
    if sigma > 0.3:
        # Blur at reduced size: the shadow is low-frequency, and a large-sigma blur at 24 MP is slow.
        factor = max(1, int(sigma // 4))
        if factor > 1:
            small = cv2.resize(shifted, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
            small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
            shifted = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        else:
            shifted = cv2.GaussianBlur(shifted, (0, 0), sigma)
    return np.clip(shifted, 0, 1) * shadow.opacity


def shadow_layer(foreground: np.ndarray, alpha: np.ndarray, shadow: Shadow) -> tuple[np.ndarray, np.ndarray]:
    """The subject and its drop shadow as one layer.

    ``foreground`` uint8 (H, W, 3), ``alpha`` float32 (H, W) in 0..1. Returns
    (colour float32 (H, W, 3) in 0..255, coverage float32 (H, W) in 0..1).
    """
    s = shadow_alpha(alpha, shadow)
    coverage = alpha + (1 - alpha) * s
    # The shadow is black: it adds coverage but no colour, so the subject's colour is re-weighted.
    colour = foreground.astype(np.float32) * (alpha / np.maximum(coverage, 1e-6))[..., None]
    return colour, coverage


def subject_box(alpha: np.ndarray, threshold: float = 0.05) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of pixels with alpha above ``threshold``, exclusive right/bottom."""
    # Row and column projections: ~20x faster at 12 MP than listing every pixel (cv2.findNonZero).
    mask = alpha > threshold
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def parse_margin(margin: int | str, box: tuple[int, int, int, int]) -> int:
    """A margin in px (``12``, ``"12px"``) or relative to the subject's long side (``"5%"``)."""
    text = str(margin).strip().lower()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError
            return int(round(pct / 100 * max(box[2] - box[0], box[3] - box[1])))
        value = int(text[:-2] if text.endswith("px") else text)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise InputError("invalid_option", f"crop margin must be pixels (e.g. 20) or a percentage (e.g. 5%), got {margin!r}") from None


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _alpha8(alpha: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(alpha, alpha=255.0)  # rounds and saturates in one pass


def _flatten(foreground: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Foreground over a solid colour: uint8 (H, W, 3)."""
    solid = np.empty_like(foreground)
    solid[...] = np.asarray(background, np.uint8)
    return cv2.blendLinear(foreground, solid, alpha, 1.0 - alpha)


def _rgba(foreground: np.ndarray, alpha8: np.ndarray) -> np.ndarray:
    """Straight RGBA; invisible pixels carry no colour, which halves the PNG and its encoding time."""
    visible = cv2.bitwise_and(foreground, foreground, mask=(alpha8 > 0).view(np.uint8))
    return cv2.merge([visible[..., 0], visible[..., 1], visible[..., 2], alpha8])


def compose(
    foreground: np.ndarray,
    alpha: np.ndarray,
    background: tuple[int, int, int] | None = None,
    shadow: Shadow | None = None,
    crop: bool = False,
    crop_margin: int | str = "2%",
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Build the output picture.

    ``foreground`` uint8 (H, W, 3), ``alpha`` float32 (H, W) in 0..1.
    Returns (pixels, box): uint8 (h, w, 4) RGBA when ``background`` is ``None``,
    else uint8 (h, w, 3) RGB flattened onto it; ``box`` is the crop applied as
    (left, top, right, bottom) in source pixels, or ``None`` when not cropped.
    """
    if shadow is not None and shadow.opacity > 0:
        colour, a = shadow_layer(foreground, alpha, shadow)
        if background is None:
            pixels = np.dstack([_to_uint8(colour), _to_uint8(a * 255.0)])
        else:
            pixels = _to_uint8(colour * a[..., None] + np.asarray(background, np.float32) * (1 - a[..., None]))
    else:
        a = alpha
        if background is None:
            pixels = _rgba(foreground, _alpha8(alpha))
        else:
            pixels = _flatten(foreground, alpha, background)
    box = None
    if crop:
        found = subject_box(a)
        if found is not None:
            m = parse_margin(crop_margin, found)
            h, w = alpha.shape
            box = (max(0, found[0] - m), max(0, found[1] - m), min(w, found[2] + m), min(h, found[3] + m))
            pixels = np.ascontiguousarray(pixels[box[1] : box[3], box[0] : box[2]])
    return pixels, box
