"""Guided-filter refinement on a torch device: the maths of :mod:`bgclear.stages.matte.guided`.

Coefficients at the working size; applied at full resolution to every pixel, the
unknown band then chosen with ``torch.where`` (on a GPU a dense pass is cheaper than
gathering the band's pixels).
"""

from __future__ import annotations

import torch

from ..tiles import working_scale
from ..trimap import FOREGROUND, UNKNOWN
from .resample import box_filter, resize_area, resize_linear


def guided_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Window-averaged coefficients of the colour guided filter.

    ``guide`` float32 (3, h, w) in 0..1, ``src`` float32 (h, w) -> float32 (4, h, w): mean a
    (channels 0..2) and mean b (channel 3), as :func:`bgclear.stages.matte.guided_coefficients`
    (the same cofactors, written as cross products of the covariance's columns).
    """
    mean_i = box_filter(guide, radius)
    mean_p = box_filter(src, radius)
    cov_ip = box_filter(guide * src, radius) - mean_i * mean_p
    r, g, b = guide[0], guide[1], guide[2]
    second = box_filter(torch.stack([r * r, r * g, r * b, g * g, g * b, b * b]), radius)
    mr, mg, mb = mean_i[0], mean_i[1], mean_i[2]
    # Columns of the symmetric covariance (+ eps); its inverse's rows are their pairwise cross
    # products over the determinant: the numpy stage's cofactors, term for term.
    c0 = torch.stack([second[0] - mr * mr + eps, second[1] - mr * mg, second[2] - mr * mb])
    c1 = torch.stack([c0[1], second[3] - mg * mg + eps, second[4] - mg * mb])
    c2 = torch.stack([c0[2], c1[2], second[5] - mb * mb + eps])
    rows = [torch.linalg.cross(c1, c2, dim=0), torch.linalg.cross(c2, c0, dim=0), torch.linalg.cross(c0, c1, dim=0)]
    inv_det = 1.0 / (c0 * rows[0]).sum(0)
    a = torch.stack([(row * cov_ip).sum(0) * inv_det for row in rows])
    bias = mean_p - (a * mean_i).sum(0)
    return box_filter(torch.cat([a, bias[None]]), radius)


def refine(
    rgb: torch.Tensor, trimap: torch.Tensor, coarse: torch.Tensor,
    radius_fraction: float = 0.008, eps: float = 1e-3, working_side: int = 1024,
) -> torch.Tensor:
    """Alpha float32 (H, W) in 0..1 from ``rgb`` float32 (3, H, W) holding 0..255, ``trimap``
    uint8 (H, W) in {0, 128, 255} and ``coarse`` float32 (H, W) in 0..1; the parameters are
    :class:`bgclear.stages.matte.GuidedRefiner`'s. Known pixels get the trimap's 0 or 1."""
    h, w = trimap.shape
    unknown = trimap == UNKNOWN
    alpha = torch.where(unknown, coarse, (trimap == FOREGROUND).float())
    factor, low_size = working_scale(w, h, working_side)
    if factor > 1:
        low_rgb, low_alpha = resize_area(rgb, low_size, to_uint8=True), resize_area(alpha, low_size)
    else:
        low_rgb, low_alpha = rgb, alpha
    radius = max(2, int(round(radius_fraction * max(low_size))))
    coefficients = guided_coefficients(low_rgb / 255.0, low_alpha, radius, eps)
    if factor > 1:
        coefficients = resize_linear(coefficients, (w, h), remap=True)
    guide = rgb * (1.0 / 255.0)
    values = coefficients[0] * guide[0] + coefficients[1] * guide[1] + coefficients[2] * guide[2] + coefficients[3]
    return torch.where(unknown, values.clamp_(0.0, 1.0), alpha)
