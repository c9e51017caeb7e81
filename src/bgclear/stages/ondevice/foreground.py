"""Foreground colours on a torch device: the blur-fusion maths of :mod:`bgclear.stages.foreground`.

Both blur passes at the working size; the correction towards I = aF + (1-a)B at every
full-resolution pixel, kept where alpha is mixed (0 < a < 1) with ``torch.where``.
"""

from __future__ import annotations

import torch

from ..tiles import working_scale
from .resample import box_filter, resize_area, resize_linear


def _local_means(fg: torch.Tensor, bg: torch.Tensor, alpha: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha-weighted local mean of ``fg`` and (1 - alpha)-weighted local mean of ``bg`` (3, h, w)."""
    blurred_a = box_filter(alpha, radius)
    mean_f = box_filter(fg * alpha, radius) / (blurred_a + 1e-5)
    mean_b = box_filter(bg * (1 - alpha), radius) / ((1 - blurred_a) + 1e-5)
    return mean_f, mean_b


def _correct(image: torch.Tensor, f: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """One step from the local means towards image = a*F + (1-a)*B, clipped to 0..1."""
    return (((image - b) - (f - b) * alpha) * alpha + f).clamp_(0.0, 1.0)


def estimate_foreground(rgb: torch.Tensor, alpha: torch.Tensor, working_side: int = 1024) -> torch.Tensor:
    """Foreground colours: ``rgb`` float32 (3, H, W) holding 0..255, ``alpha`` float32 (H, W) in 0..1
    -> uint8 (3, H, W), equal to the input where alpha is 0 or 1 (within 1/512), as
    :func:`bgclear.stages.foreground.estimate_foreground`."""
    h, w = alpha.shape
    mixed = (alpha > 1.0 / 512) & (alpha < 1.0 - 1.0 / 512)
    factor, low_size = working_scale(w, h, working_side)
    low_image = (resize_area(rgb, low_size, to_uint8=True) if factor > 1 else rgb) / 255.0
    low_alpha = resize_area(alpha, low_size) if factor > 1 else alpha
    wide = max(8, int(round(0.05 * max(low_size))))  # reaches pure pixels well beyond the band
    narrow = max(2, int(round(0.004 * max(low_size))))
    mean_f, mean_b = _local_means(low_image, low_image, low_alpha, wide)
    first_f = _correct(low_image, mean_f, mean_b, low_alpha)
    mean_f, mean_b = _local_means(first_f, mean_b, low_alpha, narrow)
    fb = torch.cat([mean_f, mean_b])
    if factor > 1:
        fb = resize_linear(fb, (w, h), remap=True)
    f = _correct(rgb * (1.0 / 255.0), fb[:3], fb[3:], alpha)
    return torch.where(mixed, torch.floor(f * 255.0 + 0.5), rgb).to(torch.uint8)
