"""Closed-form matting (Levin et al. 2008, via pymatting) restricted to the band: the baseline."""

from __future__ import annotations

import cv2
import numpy as np

from ..tiles import bounding_box
from ..trimap import BACKGROUND, FOREGROUND, UNKNOWN
from . import known_alpha
from .guided import guided_filter


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
