"""The trimap and the coarse probability brought to full size on a torch device.

The trimap itself is made at the working size by the numpy stage
(:func:`bgclear.stages.trimap.working_trimap`, ~1 MP, already cheap on the CPU); only
the full-resolution maps are made on the device.
"""

from __future__ import annotations

import torch

from .resample import resize_linear, resize_nearest


def full_trimap(trimap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (h', w') -> uint8 (H, W) for ``size`` = (W, H), nearest neighbour as cv2.INTER_NEAREST."""
    return resize_nearest(trimap, size)


def upsample_probability(prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """float32 (h', w') in 0..1 -> float32 (H, W), bilinear as cv2.INTER_LINEAR, clipped to 0..1
    (returned as it is when already that size, as :func:`bgclear.stages.segment.upsample_probability`)."""
    if tuple(prob.shape[::-1]) == tuple(size):
        return prob
    return resize_linear(prob, size).clamp_(0.0, 1.0)
