"""Stage 4 — matting: refine alpha inside the trimap's unknown band.

A refiner takes the image, the trimap and the coarse probability at full
resolution and returns alpha at full resolution. Known pixels keep the trimap's
value; only unknown pixels are estimated, tile by tile, so memory and time
follow the band, never the whole photo.

Refiners here:
- ``guided``: colour guided filter of the coarse probability (He et al. 2013),
  computed at native resolution: alpha follows the photo's own edges.
- ``closed-form``: closed-form matting (Levin et al. 2008, via pymatting)
  restricted to the band, at a bounded working scale, then guided back to native
  resolution. The slower baseline.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from .tiles import band_tiles, bounding_box
from .trimap import BACKGROUND, FOREGROUND, UNKNOWN


class Refiner(Protocol):
    name: str

    def refine(self, rgb: np.ndarray, trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """``rgb`` uint8 (H, W, 3), ``trimap`` uint8 (H, W) in {0, 128, 255},
        ``coarse`` float32 (H, W) in 0..1 -> alpha float32 (H, W) in 0..1.
        Pixels outside the unknown band must equal the trimap (0 or 1)."""
        ...


def known_alpha(trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Alpha that is 0/1 on known pixels and the coarse value on unknown ones (float32 (H, W))."""
    alpha = (trimap == FOREGROUND).astype(np.float32)
    unknown = trimap == UNKNOWN
    alpha[unknown] = coarse[unknown]
    return alpha


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Colour guided filter.

    ``guide`` float32 (h, w, 3) in 0..1, ``src`` float32 (h, w); returns float32 (h, w).
    """
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ksize, normalize=True, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide)
    mean_p = box(src)
    mean_ip = box(guide * src[..., None])
    cov_ip = mean_ip - mean_i * mean_p[..., None]
    # Per-pixel 3x3 covariance of the guide, regularised, then solved for a.
    ii = np.einsum("...i,...j->...ij", guide, guide).reshape(*guide.shape[:2], 9)
    var = box(ii).reshape(*guide.shape[:2], 3, 3) - np.einsum("...i,...j->...ij", mean_i, mean_i)
    var += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var, cov_ip[..., None])[..., 0]
    b = mean_p - np.einsum("...i,...i->...", a, mean_i)
    mean_a = box(a)
    mean_b = box(b)
    return np.einsum("...i,...i->...", mean_a, guide) + mean_b


class GuidedRefiner:
    """Guided-filter refinement of the band at native resolution."""

    name = "guided"

    def __init__(self, radius_fraction: float = 0.008, eps: float = 1e-3, tile: int = 512) -> None:
        self.radius_fraction = radius_fraction
        self.eps = eps
        self.tile = tile

    def refine(self, rgb: np.ndarray, trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        h, w = trimap.shape
        radius = max(2, int(round(self.radius_fraction * max(h, w))))
        unknown = trimap == UNKNOWN
        alpha = known_alpha(trimap, coarse)
        for orows, ocols, irows, icols in band_tiles(unknown, self.tile, pad=2 * radius):
            guide = rgb[orows, ocols].astype(np.float32) * (1.0 / 255.0)
            filtered = guided_filter(guide, alpha[orows, ocols], radius, self.eps)[irows, icols]
            tile_rows = slice(orows.start + irows.start, orows.start + irows.stop)
            tile_cols = slice(ocols.start + icols.start, ocols.start + icols.stop)
            mask = unknown[tile_rows, tile_cols]
            np.clip(filtered, 0.0, 1.0, out=filtered)
            alpha[tile_rows, tile_cols][mask] = filtered[mask]
        return alpha


class ClosedFormRefiner:
    """Closed-form matting over the band's bounding box at a bounded working size."""

    name = "closed-form"

    def __init__(self, max_side: int = 1024, guided_upsample: bool = True) -> None:
        self.max_side = max_side
        self.guided_upsample = guided_upsample

    def refine(self, rgb: np.ndarray, trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        from pymatting import estimate_alpha_cf

        unknown = trimap == UNKNOWN
        alpha = known_alpha(trimap, coarse)
        box = bounding_box(unknown, pad=8)
        if box is None:
            return alpha
        rows, cols = box
        crop_tri = trimap[rows, cols]
        if not ((crop_tri == FOREGROUND).any() and (crop_tri == BACKGROUND).any()):
            return alpha  # nothing to anchor a matting solve: keep the coarse values
        ch, cw = crop_tri.shape
        scale = min(1.0, self.max_side / max(ch, cw))
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        img = rgb[rows, cols]
        small_img = cv2.resize(img, size, interpolation=cv2.INTER_AREA) if scale < 1 else img
        small_tri = cv2.resize(crop_tri, size, interpolation=cv2.INTER_NEAREST) if scale < 1 else crop_tri
        solved = estimate_alpha_cf(small_img.astype(np.float64) / 255.0, small_tri.astype(np.float64) / 255.0)
        solved = np.clip(solved, 0, 1).astype(np.float32)
        if scale < 1:
            solved = cv2.resize(solved, (cw, ch), interpolation=cv2.INTER_LINEAR)
            if self.guided_upsample:
                r = max(2, int(round(1.0 / scale)))
                solved = np.clip(guided_filter(img.astype(np.float32) / 255.0, solved, r, 1e-4), 0, 1)
        crop_unknown = unknown[rows, cols]
        alpha[rows, cols][crop_unknown] = solved[crop_unknown]
        return alpha


REFINERS = {"guided": GuidedRefiner, "closed-form": ClosedFormRefiner}
