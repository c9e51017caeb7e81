"""Stage 5 — foreground colour estimation (decontamination).

A semi-transparent edge pixel is a mix I = a*F + (1-a)*B. Showing I itself
on a new background keeps a glow of the old one; we solve for F instead.

Method: blur-fusion foreground estimation (Forte & Pitie, "Approximate Fast
Foreground Colour Estimation", ICIP 2021): local alpha-weighted means of the
foreground and background, then a one-step correction towards the
compositing equation, twice (a wide pass for colour, a narrow pass for detail).
Only pixels with 0 < alpha < 1 change, and only tiles holding such pixels are
computed.
"""

from __future__ import annotations

import cv2
import numpy as np

from .tiles import band_tiles


def _blur(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.blur(x, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def _fuse(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    a = alpha[..., None]
    blurred_a = _blur(alpha, radius)[..., None]
    blurred_f = _blur(fg * a, radius) / (blurred_a + 1e-5)
    blurred_b = _blur(bg * (1 - a), radius) / ((1 - blurred_a) + 1e-5)
    f = blurred_f + a * (image - a * blurred_f - (1 - a) * blurred_b)
    return np.clip(f, 0, 1), blurred_b


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, tile: int = 512) -> np.ndarray:
    """Foreground colours F for every pixel.

    ``rgb`` uint8 (H, W, 3), ``alpha`` float32 (H, W) in 0..1 -> uint8 (H, W, 3).
    Where alpha is 0 or 1, F equals the input pixel.
    """
    h, w = alpha.shape
    mixed = (alpha > 1.0 / 512) & (alpha < 1.0 - 1.0 / 512)
    out = rgb.copy()
    if not mixed.any():
        return out
    wide = max(16, int(round(0.05 * max(h, w))))  # colour context: far enough to reach pure pixels
    narrow = max(2, int(round(0.002 * max(h, w))))
    for orows, ocols, irows, icols in band_tiles(mixed, tile, pad=wide + narrow):
        image = rgb[orows, ocols].astype(np.float32) * (1.0 / 255.0)
        a = alpha[orows, ocols]
        f, b = _fuse(image, image, image, a, wide)
        f, _ = _fuse(image, f, b, a, narrow)
        f = f[irows, icols]
        rows = slice(orows.start + irows.start, orows.start + irows.stop)
        cols = slice(ocols.start + icols.start, ocols.start + icols.stop)
        m = mixed[rows, cols]
        out[rows, cols][m] = np.round(f[m] * 255.0).astype(np.uint8)
    return out
