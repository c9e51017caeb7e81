"""Standard alpha-matting error metrics.

Definitions follow Rhemann et al. (CVPR 2009) and the Deep Image Matting
evaluation code (Xu et al. 2017). All functions take ``pred`` and ``gt`` as
float arrays (H, W) in 0..1 and an optional boolean ``region`` (H, W) that
restricts the sum (the trimap's unknown region); ``None`` means the whole image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _region(pred: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    if region is None:
        return np.ones(pred.shape, bool)
    return region.astype(bool)


def sad(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> float:
    """Sum of absolute differences / 1000."""
    m = _region(pred, region)
    return float(np.abs(pred - gt)[m].sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared error over the region (report x1e3 by convention)."""
    m = _region(pred, region)
    n = int(m.sum())
    return float(((pred - gt) ** 2)[m].sum() / max(n, 1))


def _gaussian_derivative_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D factors of the reference code's ``gaussgradient`` kernel (L2-normalised 2-D)."""
    epsilon = 1e-2
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    dgauss = -u * gauss / sigma**2
    norm = np.sqrt(np.sum(np.outer(gauss, dgauss) ** 2))
    return gauss, dgauss / norm


def _gradient_magnitude(alpha: np.ndarray, sigma: float) -> np.ndarray:
    gauss, dgauss = _gaussian_derivative_kernels(sigma)
    a = alpha.astype(np.float64)
    gx = ndimage.correlate1d(ndimage.correlate1d(a, gauss, axis=0, mode="nearest"), dgauss, axis=1, mode="nearest")
    gy = ndimage.correlate1d(ndimage.correlate1d(a, gauss, axis=1, mode="nearest"), dgauss, axis=0, mode="nearest")
    return np.hypot(gx, gy)


def gradient_error(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, sigma: float = 1.4) -> float:
    """Sum of squared differences of Gaussian-derivative gradient magnitudes / 1000."""
    m = _region(pred, region)
    diff = (_gradient_magnitude(pred, sigma) - _gradient_magnitude(gt, sigma)) ** 2
    return float(diff[m].sum() / 1000.0)


def connectivity_error(
    pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, step: float = 0.1, theta: float = 0.15
) -> float:
    """Connectivity error / 1000 (threshold step 0.1, theta 0.15, 4-connectivity)."""
    m = _region(pred, region)
    thresholds = np.arange(0.0, 1.0 + step / 2, step)
    level = np.full(pred.shape, -1.0)
    four = ndimage.generate_binary_structure(2, 1)
    for i in range(1, len(thresholds)):
        both = (pred >= thresholds[i]) & (gt >= thresholds[i])
        labels, count = ndimage.label(both, structure=four)
        if count:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            omega = labels == int(np.argmax(sizes))
        else:
            omega = np.zeros(pred.shape, bool)
        fresh = (level == -1) & ~omega
        level[fresh] = thresholds[i - 1]
    level[level == -1] = 1.0
    pred_d = pred - level
    gt_d = gt - level
    pred_phi = 1 - pred_d * (pred_d >= theta)
    gt_phi = 1 - gt_d * (gt_d >= theta)
    return float(np.abs(pred_phi - gt_phi)[m].sum() / 1000.0)


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of the binarised mattes (1.0 when both are empty)."""
    p = pred >= threshold
    g = gt >= threshold
    union = int((p | g).sum())
    return float((p & g).sum() / union) if union else 1.0


def all_metrics(pred: np.ndarray, gt: np.ndarray, unknown: np.ndarray | None) -> dict[str, float]:
    """Every metric over the whole image and, when ``unknown`` is given, over the unknown region."""
    out = {
        "sad": sad(pred, gt),
        "mse": mse(pred, gt),
        "grad": gradient_error(pred, gt),
        "conn": connectivity_error(pred, gt),
        "iou": iou(pred, gt),
    }
    if unknown is not None:
        out.update(
            sad_unknown=sad(pred, gt, unknown),
            mse_unknown=mse(pred, gt, unknown),
            grad_unknown=gradient_error(pred, gt, unknown),
            conn_unknown=connectivity_error(pred, gt, unknown),
        )
    return out
