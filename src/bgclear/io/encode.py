"""Stage 7 — encode: pixels in, file bytes out."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..errors import InputError
from .png import encode_png

FORMATS = ("png", "jpg", "webp")
_ALIASES = {"jpeg": "jpg", "png": "png", "jpg": "jpg", "webp": "webp"}
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def normalise_format(fmt: str) -> str:
    try:
        return _ALIASES[fmt.lower().lstrip(".")]
    except KeyError:
        raise InputError("invalid_option", f"unknown output format {fmt!r}; use png, jpg or webp") from None


def encode(pixels: np.ndarray, fmt: str = "png", quality: int = 92, png_compression: int = 1) -> bytes:
    """Encode uint8 pixels: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA.

    JPEG has no alpha: an RGBA input is flattened onto white first (callers that
    want another colour compose before encoding). PNG uses a low zlib level by
    default (at 12-24 MP the higher levels cost seconds for a few percent) and
    deflates on every core (:mod:`bgclear.png`).
    """
    fmt = normalise_format(fmt)
    if fmt == "jpg" and pixels.ndim == 3 and pixels.shape[2] == 4:
        a = pixels[..., 3:4].astype(np.float32) / 255.0
        pixels = np.clip(pixels[..., :3] * a + 255.0 * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    if fmt == "png":
        return encode_png(pixels, level=png_compression)
    image = Image.fromarray(pixels)
    out = io.BytesIO()
    if fmt == "jpg":
        image.convert("RGB" if image.mode != "L" else "L").save(out, "JPEG", quality=quality, optimize=False, subsampling=0 if quality >= 90 else 2)
    else:
        image.save(out, "WEBP", quality=quality, method=4)
    return out.getvalue()
