"""Resizes and box filters on torch tensors, following OpenCV's conventions.

Everything works on the last two dimensions of a float32 tensor (..., H, W), on any
torch device. The index and weight tables are computed on the host in float64, the
way OpenCV computes them, and applied as gathers, so the results equal cv2's up to
float rounding (checked in tests/test_ondevice_stages.py):

- :func:`resize_nearest`: ``cv2.resize(..., INTER_NEAREST)`` (source index ``floor(x * src / dst)``).
- :func:`resize_linear`: ``cv2.resize(..., INTER_LINEAR)`` on float32 (half-pixel centres, edge
  replicated; a 2x downscale becomes INTER_AREA as in cv2), or with ``remap=True`` the
  float32 positions :func:`bgclear.stages.tiles.sample_at` hands to ``cv2.remap``.
- :func:`resize_area`: ``cv2.resize(..., INTER_AREA)`` for a downscale (exact pixel-overlap
  weights); ``to_uint8=True`` rounds like cv2 does for uint8 pictures (half to even; half up
  for cv2's 2x fast path). A tie can land one grey level apart where cv2 sums in another order.
- :func:`box_filter`: ``cv2.boxFilter`` / ``cv2.blur`` normalised, ``BORDER_REFLECT``
  (edge pixel repeated), with float64 sums as cv2 uses for float32 input.
"""

from __future__ import annotations

import numpy as np
import torch


def _on(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(like.device)


def _scale(src: int, dst: int) -> float:
    return 1.0 / (dst / src)  # cv2: scale = 1 / inv_scale, inv_scale = dst / src (float64)


def nearest_index(src: int, dst: int) -> np.ndarray:
    """int64 (dst,): the source index cv2's INTER_NEAREST reads for each destination index."""
    return np.minimum(np.floor(np.arange(dst) * _scale(src, dst)).astype(np.int64), src - 1)


def linear_taps(src: int, dst: int, remap: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w0, w1) for each destination index: int64 (dst,) x2, float32 (dst,) x2.

    ``remap=False``: cv2.resize's float INTER_LINEAR. ``remap=True``: positions computed in
    float32 as :func:`bgclear.stages.tiles.sample_at` does before it calls cv2.remap.
    """
    if remap:
        pos = (np.arange(dst, dtype=np.float32) + np.float32(0.5)) * np.float32(src / dst) - np.float32(0.5)
        base = np.floor(pos)
        frac = (pos - base).astype(np.float32)
        base = base.astype(np.int64)
        i0, i1 = np.clip(base, 0, src - 1), np.clip(base + 1, 0, src - 1)
        return i0, i1, np.float32(1) - frac, frac
    pos = (np.arange(dst) + 0.5) * _scale(src, dst) - 0.5  # float64: what matches cv2 5.0 to one ulp
    base = np.floor(pos)
    frac = (pos - base).astype(np.float32)
    outside = (base < 0) | (base >= src - 1)
    frac[outside] = 0
    base = np.clip(base, 0, src - 1).astype(np.int64)
    return base, np.minimum(base + 1, src - 1), (np.float32(1) - frac).astype(np.float32), frac


def area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """(index int64 (dst, K), weight float32 (dst, K)): cv2's INTER_AREA table (computeResizeAreaTab).

    Each destination pixel averages the source pixels it overlaps, partial ones by their
    overlap; unused taps have weight 0.
    """
    scale = _scale(src, dst)
    fsx1 = np.arange(dst) * scale
    fsx2 = fsx1 + scale
    cell = np.minimum(scale, src - fsx1)
    sx2 = np.minimum(np.floor(fsx2).astype(np.int64), src - 1)
    sx1 = np.minimum(np.ceil(fsx1).astype(np.int64), sx2)
    columns: list[tuple[np.ndarray, np.ndarray]] = []
    left = sx1 - fsx1 > 1e-3
    columns.append((np.where(left, sx1 - 1, 0), np.where(left, (sx1 - fsx1) / cell, 0.0)))
    for k in range(int(np.max(sx2 - sx1, initial=0))):
        inside = sx1 + k < sx2
        columns.append((np.where(inside, sx1 + k, 0), np.where(inside, 1.0 / cell, 0.0)))
    right = fsx2 - sx2 > 1e-3
    columns.append((np.where(right, sx2, 0), np.where(right, np.minimum(np.minimum(fsx2 - sx2, 1.0), cell) / cell, 0.0)))
    index = np.stack([c[0] for c in columns], axis=1)
    weight = np.stack([c[1] for c in columns], axis=1).astype(np.float32)  # cv2 casts each weight to float
    return index, weight


def _along(x: torch.Tensor, dim: int, index: np.ndarray, weight: np.ndarray) -> torch.Tensor:
    """Weighted sum of taps along ``dim`` (-1 or -2), taps accumulated in order as cv2 does."""
    idx, w = _on(index, x), _on(weight, x)
    out = None
    for k in range(idx.shape[1]):
        wk = w[:, k] if dim == -1 else w[:, k, None]
        term = x.index_select(dim, idx[:, k]) * wk
        out = term if out is None else out + term
    return out


def resize_nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2 INTER_NEAREST: (..., h, w) any dtype -> (..., H, W) for ``size`` = (W, H)."""
    h, w = x.shape[-2:]
    if (w, h) == tuple(size):
        return x
    rows, cols = _on(nearest_index(h, size[1]), x), _on(nearest_index(w, size[0]), x)
    return x.index_select(-2, rows).index_select(-1, cols)


def resize_area(x: torch.Tensor, size: tuple[int, int], to_uint8: bool = False) -> torch.Tensor:
    """cv2 INTER_AREA downscale: float32 (..., h, w) -> (..., H, W) for ``size`` = (W, H), H <= h, W <= w.

    ``to_uint8``: the input holds uint8 values (0..255 as float32) and the result is rounded to
    integers as cv2 rounds a uint8 picture (still float32).
    """
    h, w = x.shape[-2:]
    out = _along(x, -1, *area_taps(w, size[0]))
    out = _along(out, -2, *area_taps(h, size[1]))
    if not to_uint8:
        return out
    if w == 2 * size[0] and h == 2 * size[1]:
        return torch.floor(out + 0.5).clamp_(0, 255)  # cv2's 2x fast path: (sum + 2) >> 2
    return torch.round(out).clamp_(0, 255)  # saturate_cast: half to even


def resize_linear(x: torch.Tensor, size: tuple[int, int], remap: bool = False) -> torch.Tensor:
    """Bilinear float32 (..., h, w) -> (..., H, W) for ``size`` = (W, H), cv2's conventions (module docstring)."""
    h, w = x.shape[-2:]
    if not remap and w == 2 * size[0] and h == 2 * size[1]:
        return resize_area(x, size)  # cv2.resize turns an exact 2x INTER_LINEAR downscale into INTER_AREA
    def taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
        i0, i1, w0, w1 = linear_taps(src, dst, remap)
        return np.stack([i0, i1], axis=1), np.stack([w0, w1], axis=1)

    return _along(_along(x, -1, *taps(w, size[0])), -2, *taps(h, size[1]))


def reflect_index(n: int, radius: int) -> np.ndarray:
    """int64 (n + 2 radius,): source index of positions -radius .. n + radius - 1 under BORDER_REFLECT."""
    p = np.arange(-radius, n + radius)
    if n == 1:
        return np.zeros_like(p)
    period = 2 * n  # fedcba|abcdef|fedcba repeats every 2n
    p = np.mod(p, period)
    return np.where(p < n, p, period - 1 - p)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised (2 radius + 1)^2 box mean of float32 (..., h, w), BORDER_REFLECT -> float32 (..., h, w)."""
    k = 2 * radius + 1
    out = x.double()
    for dim in (-1, -2):
        n = out.shape[dim]
        padded = out.index_select(dim, _on(reflect_index(n, radius), out))
        sums = torch.cumsum(padded, dim)
        # window sum at i = cumsum[i + k - 1] - cumsum[i - 1], with cumsum[-1] = 0
        first = sums.narrow(dim, k - 1, 1)
        out = torch.cat([first, sums.narrow(dim, k, n - 1) - sums.narrow(dim, 0, n - 1)], dim)
    return (out * (1.0 / (k * k))).float()
