"""Colour-line matting: alpha from each pixel's colour between its local foreground and background."""

from __future__ import annotations

import cv2
import numpy as np

from ..tiles import band_tiles
from ..trimap import BACKGROUND, FOREGROUND, UNKNOWN
from . import known_alpha
from .guided import guided_filter


def _local_mean(image: np.ndarray, weight: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted local mean colour (h, w, 3) and the local weight mass (h, w)."""
    ksize = (2 * radius + 1, 2 * radius + 1)
    mass = cv2.blur(weight, ksize, borderType=cv2.BORDER_REFLECT)
    total = cv2.blur(image * weight[..., None], ksize, borderType=cv2.BORDER_REFLECT)
    return total / np.maximum(mass, 1e-6)[..., None], mass


class ColourLineRefiner:
    """Alpha from each pixel's own colour between its local foreground and background colours.

    For an unknown pixel I with local mean colours F (of the definite foreground
    nearby) and B (of the definite background nearby), the compositing equation
    I = aF + (1-a)B gives a = (I-B).(F-B) / |F-B|^2. It is computed from the
    photo's own pixels at native resolution, so strands and holes appear at
    their real size instead of the segmenter's blurred version. Where F and B
    are too alike to tell apart, or one of them is not nearby, the estimate is
    blended back towards the coarse probability by that confidence. A small
    guided filter then removes pixel noise.
    """

    name = "colour-line"

    def __init__(self, context_fraction: float = 0.02, separation: float = 0.08, smooth_fraction: float = 0.001,
                 eps: float = 1e-4, tile: int = 512) -> None:
        self.context_fraction = context_fraction
        self.separation = separation
        self.smooth_fraction = smooth_fraction
        self.eps = eps
        self.tile = tile

    def refine(self, rgb: np.ndarray, trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        h, w = trimap.shape
        context = max(4, int(round(self.context_fraction * max(h, w))))
        smooth = max(1, int(round(self.smooth_fraction * max(h, w))))
        unknown = trimap == UNKNOWN
        alpha = known_alpha(trimap, coarse)
        for orows, ocols, irows, icols in band_tiles(unknown, self.tile, pad=context + 2 * smooth):
            image = rgb[orows, ocols].astype(np.float32) * (1.0 / 255.0)
            tri = trimap[orows, ocols]
            fg_mean, fg_mass = _local_mean(image, (tri == FOREGROUND).astype(np.float32), context)
            bg_mean, bg_mass = _local_mean(image, (tri == BACKGROUND).astype(np.float32), context)
            diff = fg_mean - bg_mean
            dist2 = np.einsum("...i,...i->...", diff, diff)
            estimate = np.einsum("...i,...i->...", image - bg_mean, diff) / np.maximum(dist2, 1e-6)
            estimate = np.clip(estimate, 0.0, 1.0)
            # Confidence: colours far enough apart, and both sides actually present nearby.
            present = np.minimum(fg_mass, bg_mass) * 20.0
            confidence = np.clip(present, 0, 1) * dist2 / (dist2 + self.separation**2)
            prior = alpha[orows, ocols]
            blended = confidence * estimate + (1 - confidence) * prior
            blended = guided_filter(image, blended.astype(np.float32), smooth, self.eps)
            tile_rows = slice(orows.start + irows.start, orows.start + irows.stop)
            tile_cols = slice(ocols.start + icols.start, ocols.start + icols.stop)
            mask = unknown[tile_rows, tile_cols]
            out = np.clip(blended[irows, icols], 0.0, 1.0)
            alpha[tile_rows, tile_cols][mask] = out[mask]
        return alpha
