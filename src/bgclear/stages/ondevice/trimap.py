"""The trimap and the coarse probability brought to full size on a torch device.

The trimap itself is made at the working size by the numpy stage
(:func:`bgclear.stages.trimap.make_trimap`, ~1 MP, already cheap on the CPU); only
the full-resolution maps are made on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from ..trimap import band_radius, make_trimap
from .resample import resize_linear, resize_nearest


def working_trimap(work_prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h', w') in {0, 128, 255}: the trimap of ``work_prob`` (float32 (h', w') in 0..1) at the
    working size, its band as wide as :func:`bgclear.pipeline.matte_full_resolution` makes it for a
    photo of ``size`` = (W, H)."""
    w, h = size
    factor = max(w, h) / max(work_prob.shape)  # below 1 for a preview smaller than the working size
    return make_trimap(work_prob, radius=max(2, int(round(band_radius(w, h) / factor))))


def full_trimap(trimap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (h', w') -> uint8 (H, W) for ``size`` = (W, H), nearest neighbour as cv2.INTER_NEAREST."""
    return resize_nearest(trimap, size)


def upsample_probability(prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """float32 (h', w') in 0..1 -> float32 (H, W), bilinear as cv2.INTER_LINEAR, clipped to 0..1
    (returned as it is when already that size, as :func:`bgclear.stages.segment.upsample_probability`)."""
    if tuple(prob.shape[::-1]) == tuple(size):
        return prob
    return resize_linear(prob, size).clamp_(0.0, 1.0)
