"""Stage 6b — placing a cutout on a canvas and over a backdrop.

The remove.bg-compatible API lays the subject out (region of interest, crop
with margins, scale, position, output size) and puts it over a colour that may
be semi-transparent or over the user's own photo. Each step is one function on
straight (non-premultiplied) sRGB arrays: a *layer* is ``colour`` uint8
(H, W, 3) plus ``coverage`` float32 (H, W) in 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np

from .compose import _alpha8, _flatten, _rgba

Box = tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive)


def restrict_to_box(alpha: np.ndarray, box: Box) -> np.ndarray:
    """``alpha`` float32 (H, W) with everything outside ``box`` set to 0 (a new array)."""
    left, top, right, bottom = box
    out = np.zeros_like(alpha)
    out[top:bottom, left:right] = alpha[top:bottom, left:right]
    return out


def without_semitransparency(alpha: np.ndarray, edge: float) -> np.ndarray:
    """Make the subject solid: no see-through regions, except its anti-aliased outline.

    ``alpha`` float32 (H, W) in 0..1 -> float32 (H, W). The subject is what has alpha
    >= 0.5 plus every region it encloses (a car's windows, the gap in a handle); its
    inside becomes 1, the rest 0, except within ``edge`` pixels of its outline, which
    keeps its soft alpha.
    """
    solid = (alpha >= 0.5).astype(np.uint8)
    # Enclosed regions: the parts of the rest that do not reach the image's border.
    rest = np.pad(1 - solid, 1, constant_values=1)
    _, labels = cv2.connectedComponents(rest, connectivity=4)
    solid |= ((labels[1:-1, 1:-1] != labels[0, 0]) & (rest[1:-1, 1:-1] > 0)).astype(np.uint8)
    inside = cv2.distanceTransform(solid, cv2.DIST_L2, 3)  # solid pixels: distance to the nearest other
    outside = cv2.distanceTransform(1 - solid, cv2.DIST_L2, 3)  # the others: distance to the nearest solid
    far = np.where(solid > 0, inside, outside) > edge
    return np.where(far, solid.astype(np.float32), alpha)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.resize to (width, height): area averaging when shrinking, bilinear when enlarging."""
    shrinking = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def place(colour: np.ndarray, coverage: np.ndarray, canvas: tuple[int, int], scale: float,
          offset: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Put a layer on an empty canvas of ``canvas`` = (width, height) pixels.

    The layer (``colour`` uint8 (H, W, 3), ``coverage`` float32 (H, W)) is resized by
    ``scale`` and its top-left corner put at ``offset`` = (x, y) canvas pixels (may be
    negative: what falls outside is cut). Returns the canvas layer: uint8 (h, w, 3) and
    float32 (h, w), zero where nothing landed (the inputs themselves when nothing moves).
    """
    cw, ch = canvas
    if abs(scale - 1.0) <= 1e-9 and round(offset[0]) == 0 and round(offset[1]) == 0 and coverage.shape == (ch, cw):
        return colour, coverage  # nothing moves: no copy of a full-resolution layer
    out_colour = np.zeros((ch, cw, 3), np.uint8)
    out_coverage = np.zeros((ch, cw), np.float32)
    h, w = coverage.shape
    if abs(scale - 1.0) > 1e-9:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        colour, coverage = _resize(colour, size), _resize(coverage, size)
        h, w = coverage.shape
    ox, oy = round(offset[0]), round(offset[1])
    x0, y0, x1, y1 = max(0, -ox), max(0, -oy), min(w, cw - ox), min(h, ch - oy)
    if x1 > x0 and y1 > y0:
        out_colour[y0 + oy : y1 + oy, x0 + ox : x1 + ox] = colour[y0:y1, x0:x1]
        out_coverage[y0 + oy : y1 + oy, x0 + ox : x1 + ox] = coverage[y0:y1, x0:x1]
    return out_colour, out_coverage


def fit_cover(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` uint8 (h, w, C) to cover ``size`` = (width, height), keeping its
    aspect ratio, and cut the overflow equally from both sides (centred), as CSS
    ``background-size: cover``. Returns uint8 (height, width, C); an image already
    of that size is returned as it is."""
    width, height = size
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    k = max(width / w, height / h)
    crop_w, crop_h = min(w, width / k), min(h, height / k)
    left, top = (w - crop_w) / 2, (h - crop_h) / 2
    region = image[int(top) : int(np.ceil(top + crop_h)), int(left) : int(np.ceil(left + crop_w))]
    return np.ascontiguousarray(_resize(region, (width, height)))


def over(colour: np.ndarray, coverage: np.ndarray, backdrop: np.ndarray | None) -> np.ndarray:
    """The layer over ``backdrop`` (Porter-Duff *over*, straight alpha).

    ``colour`` uint8 (H, W, 3), ``coverage`` float32 (H, W); ``backdrop`` uint8
    (H, W, 3) (opaque), (H, W, 4) or ``None`` (transparent). Returns uint8 (H, W, 3)
    when the result is opaque everywhere, else uint8 (H, W, 4).
    """
    if backdrop is None:
        return _rgba(colour, _alpha8(coverage))
    if backdrop.shape[2] == 3:
        return _flatten(colour, coverage, backdrop)
    back_alpha = backdrop[..., 3].astype(np.float32) / 255.0
    if float(back_alpha.min()) >= 1.0:
        return _flatten(colour, coverage, np.ascontiguousarray(backdrop[..., :3]))
    behind = back_alpha * (1.0 - coverage)
    alpha = coverage + behind
    rgb = (colour * coverage[..., None] + backdrop[..., :3] * behind[..., None]) / np.maximum(alpha, 1e-6)[..., None]
    return np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), _alpha8(alpha)])
