"""Stage 3 — trimap: a coarse probability in, a three-level map out.

The unknown band is where the matting stage may change alpha; everything else is
decided here. Its width scales with the image, so a 6000 px photo gets a band
as wide (relative to the subject) as a 1000 px one.
"""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255


def band_radius(width: int, height: int, fraction: float = 0.006, minimum: int = 3) -> int:
    """Half-width in pixels of the unknown band for an image of this size."""
    return max(minimum, int(round(fraction * max(width, height))))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def make_trimap(
    prob: np.ndarray,
    radius: int | None = None,
    fg_threshold: float = 0.95,
    bg_threshold: float = 0.05,
) -> np.ndarray:
    """Trimap from a foreground probability.

    ``prob``: float32 (H, W) in 0..1, already at the image's resolution.
    Returns uint8 (H, W) with 0 = background, 128 = unknown, 255 = foreground.

    Unknown = a band of ``radius`` px on each side of the 0.5 contour, plus every
    pixel the segmenter was unsure of (between the thresholds) within ``radius``
    of that contour's band. Pixels far from any edge are decided by the 0.5
    threshold: a segmenter's grey, unsure interior is a confidence problem, not
    transparency, and leaving it unknown lets matting spread the grey.
    """
    h, w = prob.shape
    r = radius if radius is not None else band_radius(w, h)
    fg = (prob >= 0.5).astype(np.uint8)
    kernel = _disk(r)
    near_edge = cv2.dilate(fg, kernel) != cv2.erode(fg, kernel)
    unsure = (prob > bg_threshold) & (prob < fg_threshold)
    reach = cv2.dilate(near_edge.astype(np.uint8), _disk(2 * r)).astype(bool)
    unknown = near_edge | (unsure & reach)
    trimap = np.where(fg.astype(bool), FOREGROUND, BACKGROUND).astype(np.uint8)
    trimap[unknown] = UNKNOWN
    return trimap


def working_trimap(work_prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h', w') in {0, 128, 255}: the trimap of ``work_prob`` (float32 (h', w') in 0..1, the
    working size) for a photo of ``size`` = (W, H), its band :func:`band_radius` of the photo's
    pixels wide (fewer working pixels when the photo is larger than the working size)."""
    w, h = size
    factor = max(w, h) / max(work_prob.shape)  # below 1 for a preview smaller than the working size
    return make_trimap(work_prob, radius=max(2, int(round(band_radius(w, h) / factor))))
