"""Guided-filter matting refinement (He et al. 2013; fast variant, He & Sun 2015)."""

from __future__ import annotations

import cv2
import numpy as np

from ..tiles import band_pixels, sample_at, working_scale
from ..trimap import UNKNOWN
from . import known_alpha


def guided_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Window-averaged linear coefficients of the colour guided filter (He et al. 2013).

    ``guide`` float32 (h, w, 3) in 0..1, ``src`` float32 (h, w) -> float32 (h, w, 4):
    channels 0..2 are mean a, channel 3 mean b, so that the output is
    ``a . guide + b``. The coefficients are smooth, which is what lets them be
    computed at a working resolution and applied to the full-resolution photo
    (the "fast guided filter", He & Sun 2015). The per-pixel 3x3 covariance is
    inverted in closed form: a generic batched solve is several times slower.
    """
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ksize, normalize=True, borderType=cv2.BORDER_REFLECT)

    guide = guide.astype(np.float32, copy=False)
    src = src.astype(np.float32, copy=False)
    r, g, b = guide[..., 0], guide[..., 1], guide[..., 2]
    mean_i = box(guide)
    mean_p = box(src)
    cov_ip = box(guide * src[..., None]) - mean_i * mean_p[..., None]
    second = box(np.dstack([r * r, r * g, r * b, g * g, g * b, b * b]))
    mr, mg, mb = mean_i[..., 0], mean_i[..., 1], mean_i[..., 2]
    rr = second[..., 0] - mr * mr + eps
    rg = second[..., 1] - mr * mg
    rb = second[..., 2] - mr * mb
    gg = second[..., 3] - mg * mg + eps
    gb = second[..., 4] - mg * mb
    bb = second[..., 5] - mb * mb + eps
    # Inverse of the symmetric matrix [[rr, rg, rb], [rg, gg, gb], [rb, gb, bb]] via cofactors.
    c_rr = gg * bb - gb * gb
    c_rg = gb * rb - rg * bb
    c_rb = rg * gb - gg * rb
    c_gg = rr * bb - rb * rb
    c_gb = rb * rg - rr * gb
    c_bb = rr * gg - rg * rg
    inv_det = 1.0 / (rr * c_rr + rg * c_rg + rb * c_rb)
    cr, cg, cb = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = np.dstack([
        (c_rr * cr + c_rg * cg + c_rb * cb) * inv_det,
        (c_rg * cr + c_gg * cg + c_gb * cb) * inv_det,
        (c_rb * cr + c_gb * cg + c_bb * cb) * inv_det,
    ])
    bias = mean_p - np.einsum("...i,...i->...", a, mean_i)
    return box(np.dstack([a, bias]))


def apply_coefficients(coefficients: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """``a . guide + b`` for coefficients (h, w, 4) and guide (h, w, 3) -> (h, w)."""
    return np.einsum("...i,...i->...", coefficients[..., :3], guide) + coefficients[..., 3]


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Colour guided filter at one resolution: float32 (h, w, 3), (h, w) -> (h, w)."""
    return apply_coefficients(guided_coefficients(guide, src, radius, eps), guide.astype(np.float32, copy=False))


class GuidedRefiner:
    """Guided-filter refinement: coefficients at a working size, applied to every native pixel of the band.

    The output's edges follow the full-resolution photo (its detail is real at
    6000 px), while the cost of the filter itself stays that of a ~1 MP image.
    """

    name = "guided"

    def __init__(self, radius_fraction: float = 0.008, eps: float = 1e-3, working_side: int = 1024) -> None:
        self.radius_fraction = radius_fraction
        self.eps = eps
        self.working_side = working_side

    def refine(self, rgb: np.ndarray, trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        h, w = trimap.shape
        unknown = trimap == UNKNOWN
        alpha = known_alpha(trimap, coarse)
        if not unknown.any():
            return alpha
        factor, low_size = working_scale(w, h, self.working_side)
        if factor > 1:
            low_rgb = cv2.resize(rgb, low_size, interpolation=cv2.INTER_AREA)
            low_alpha = cv2.resize(alpha, low_size, interpolation=cv2.INTER_AREA)
        else:
            low_rgb, low_alpha = rgb, alpha
        radius = max(2, int(round(self.radius_fraction * max(low_size))))
        coefficients = guided_coefficients(low_rgb.astype(np.float32) / 255.0, low_alpha, radius, self.eps)
        # Apply the coefficients at each unknown native pixel only: cost follows the band.
        flat, ys, xs = band_pixels(unknown)
        coef = coefficients.reshape(-1, 4)[flat] if factor == 1 else sample_at(coefficients, (w, h), ys, xs)
        guide = rgb.reshape(-1, 3)[flat].astype(np.float32) * (1.0 / 255.0)
        values = np.einsum("ni,ni->n", coef[:, :3], guide) + coef[:, 3]
        alpha.reshape(-1)[flat] = np.clip(values, 0.0, 1.0)
        return alpha
