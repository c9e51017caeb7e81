"""Stage 2b — settle: decide the regions the segmenter was unsure of, from the photo's colours.

Salient-object segmenters such as ISNet find the right object and keep fine
structure, but where they are unsure they output grey (0.1..0.9) over whole
interior regions. Matting cannot fix that: given a grey region it spreads the
grey. So before the trimap, each unsure pixel is decided with evidence from the
image itself: colour models (smoothed 3-D histograms) of the pixels the network
*is* confident about, combined with the network's own probability as a prior,
in log-odds. Pixels where the decision agrees with the network keep its soft
value (it carries hair and fur detail); pixels where it flips take the
posterior. Runs at a bounded working size, so it costs the same at 24 MP as at 1 MP.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_histogram(hist: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an n-D float64 histogram, zero outside (scipy.ndimage.gaussian_filter with
    ``mode="constant"``, truncate 4), one banded-matrix product per axis.

    Written here because importing scipy.ndimage costs ~0.4 s at every CLI start, more
    than this stage's work; tests check it against scipy.
    """
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis, n in enumerate(hist.shape):
        offsets = np.arange(n)[:, None] - np.arange(n)[None, :]
        band = np.where(np.abs(offsets) <= radius, taps[np.clip(offsets + radius, 0, 2 * radius)], 0.0)
        hist = np.moveaxis(np.tensordot(band, hist, axes=([1], [axis])), 0, axis)
    return hist


def colour_log_likelihood_ratio(
    image: np.ndarray, fg_mask: np.ndarray, bg_mask: np.ndarray, bins: int = 16, smoothing: float = 1.0
) -> np.ndarray:
    """log p(colour | fg) - log p(colour | bg) per pixel.

    ``image`` uint8 (h, w, 3); masks bool (h, w) of confident samples -> float32 (h, w).
    """
    q = image.astype(np.int32) * bins // 256
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    models = []
    for mask in (fg_mask, bg_mask):
        hist = np.bincount(index[mask], minlength=bins**3).astype(np.float64).reshape(bins, bins, bins)
        hist = smooth_histogram(hist, smoothing).ravel()
        models.append(np.log(hist / max(hist.sum(), 1e-12) + 1e-6))
    return (models[0][index] - models[1][index]).astype(np.float32)


def settle_unsure(
    rgb: np.ndarray,
    prob: np.ndarray,
    low: float = 0.1,
    high: float = 0.9,
    prior_weight: float = 0.5,
    working_side: int = 600,
    min_samples: int = 50,
) -> np.ndarray:
    """Decide unsure regions of ``prob`` with colour models of its confident regions.

    ``rgb`` uint8 (H, W, 3); ``prob`` float32 (H, W) in 0..1 at the same size.
    Returns float32 (H, W) in 0..1: ``prob`` itself except at unsure pixels
    (``low < prob < high``) whose colour evidence moves them across 0.5.
    ``prior_weight`` scales the network's log-odds: below 1 because in these
    regions the network has already said it does not know.
    """
    h, w = prob.shape
    scale = min(1.0, working_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    small_prob = cv2.resize(prob, size, interpolation=cv2.INTER_AREA) if scale < 1 else prob
    fg, bg = small_prob >= high, small_prob <= low
    if fg.sum() < min_samples or bg.sum() < min_samples:
        return prob  # no confident evidence on one side: nothing to learn colours from
    llr = colour_log_likelihood_ratio(small_rgb, fg, bg)
    p = np.clip(small_prob, 1e-3, 1 - 1e-3)
    posterior = 1.0 / (1.0 + np.exp(-(prior_weight * np.log(p / (1 - p)) + llr)))
    # A little spatial smoothing: decisions are about regions, not single noisy pixels.
    posterior = cv2.GaussianBlur(posterior.astype(np.float32), (0, 0), 2.0)
    posterior = cv2.resize(posterior, (w, h), interpolation=cv2.INTER_LINEAR) if scale < 1 else posterior
    unsure = (prob > low) & (prob < high)
    flips = unsure & ((prob >= 0.5) != (posterior >= 0.5))
    return np.where(flips, posterior, prob).astype(np.float32)
