"""ViTMatte (Yao et al. 2024) refinement of the trimap's unknown band at native resolution.

The network (transformers' ``VitMatteForImageMatting``) sees overlapping
windows of the photo, never a resized copy: each window is a tile of the band
(:func:`bgclear.stages.tiles.band_tiles`) grown by ``overlap`` px of context on every
side, padded to a multiple of 32 like the reference image processor, and the
predictions are blended back with weights that ramp down across the overlaps
(normalised so they sum to one at every pixel), trusting each window least near
its edges. Peak memory is one window's
activations whatever the photo's size; time follows the band's length.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..stages.matte import known_alpha
from ..stages.tiles import band_tiles
from ..stages.trimap import UNKNOWN
from ..engines.torch import default_half, describe, device_and_threads, import_torch, resolve_device, run_guarded, set_threads

log = logging.getLogger("bgclear")

SIZE_MULTIPLE = 32


def load_vitmatte(folder: str | Path):
    """``VitMatteForImageMatting`` from a checkpoint folder on disk, offline, every tensor restored.

    Raises :class:`ModelError` when transformers is missing or tensors are missing/unexpected.
    """
    import_torch()
    # bgclear never downloads at run time: make sure the hub client cannot either.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import VitMatteForImageMatting
    except ImportError as exc:
        raise ModelError(f"ViTMatte needs transformers ({exc}); pip install 'bgclear[torch]'") from None
    try:
        model, info = VitMatteForImageMatting.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True
        )
    except Exception as exc:
        raise ModelError(f"cannot load ViTMatte from {folder}: {exc}") from exc
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if problems:
        raise ModelError(f"ViTMatte checkpoint {folder} does not match its config: {problems}")
    return model.float().eval()


def vitmatte_inputs(rgb: np.ndarray, trimap: np.ndarray):
    """uint8 (h, w, 3) + uint8 (h, w) -> float32 (1, 4, h', w'), h', w' the next multiples of 32.

    As transformers' ``VitMatteImageProcessor``: RGB to (x/255 - 0.5)/0.5, trimap
    to x/255, concatenated, zero-padded at the bottom and right.
    """
    torch = import_torch()
    h, w = trimap.shape
    ph, pw = -(-h // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-w // SIZE_MULTIPLE) * SIZE_MULTIPLE
    x = np.zeros((4, ph, pw), np.float32)
    x[:3, :h, :w] = rgb.transpose(2, 0, 1) * np.float32(2 / 255) - 1
    x[3, :h, :w] = trimap * np.float32(1 / 255)
    return torch.from_numpy(x)[None]


def ramp(outer0: int, inner0: int, inner1: int, outer1: int) -> np.ndarray:
    """1-D blend weight over [outer0, outer1).

    A window's outermost predictions are the least trustworthy (the network saw
    zero padding there), so a side with a margin of ``m`` px gets weight 0 over
    its outer ``m/2`` px, then rises linearly to 1 at ``m/2`` px inside the tile.
    The neighbouring window falls over the same span, so the two sum to 1. A side
    without a margin (an image border) stays at 1.
    """
    u = np.arange(outer0, outer1, dtype=np.float32) + 0.5
    w = np.ones_like(u)
    lo, hi = inner0 - outer0, outer1 - inner1
    if lo > 0:
        w = np.minimum(w, (u - (inner0 - lo / 2)) / lo)
    if hi > 0:
        w = np.minimum(w, ((inner1 + hi / 2) - u) / hi)
    return np.clip(w, 0.0, 1.0)


def blend_weights(shape: tuple[int, int], tile: int, pad: int, cell: tuple[int, int], active: set) -> np.ndarray:
    """float32 weights of window ``cell`` = (grid row, grid col) over its outer region, divided by the
    sum of all active windows' weights there, so the blended result is a convex combination.

    Requires ``2 * pad <= tile``: then only the 3 x 3 neighbouring windows can overlap.
    """
    H, W = shape

    def bounds(g: int, n: int) -> tuple[int, int, int, int]:
        i0, i1 = g * tile, min(g * tile + tile, n)
        return max(0, i0 - pad), i0, i1, min(n, i1 + pad)

    oy0, _, _, oy1 = by = bounds(cell[0], H)
    ox0, _, _, ox1 = bx = bounds(cell[1], W)
    own = np.outer(ramp(*by), ramp(*bx))
    total = np.zeros_like(own)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            gy, gx = cell[0] + dy, cell[1] + dx
            if (gy, gx) not in active:
                continue
            ny, nx = bounds(gy, H), bounds(gx, W)
            ry0, ry1 = max(oy0, ny[0]), min(oy1, ny[3])
            rx0, rx1 = max(ox0, nx[0]), min(ox1, nx[3])
            if ry0 >= ry1 or rx0 >= rx1:
                continue
            wy = ramp(*ny)[ry0 - ny[0] : ry1 - ny[0]]
            wx = ramp(*nx)[rx0 - nx[0] : rx1 - nx[0]]
            total[ry0 - oy0 : ry1 - oy0, rx0 - ox0 : rx1 - ox0] += np.outer(wy, wx)
    # Zero only where ``own`` is zero too (pixels of inactive tiles, which are never written).
    return own / np.where(total > 0, total, 1.0)


class VitMatteRefiner:
    """Refiner protocol (:class:`bgclear.stages.matte.Refiner`) over a ViTMatte checkpoint folder.

    ``window``: side of the square the network sees (context included), ``overlap``:
    context margin on each side (``window >= 4 * overlap``). ``half``: bf16 (fp16 where the GPU lacks bf16) autocast,
    default on for CUDA.
    """

    def __init__(self, folder: str | Path, name: str = "vitmatte", device: str | None = "auto",
                 window: int = 1024, overlap: int = 128, half: bool | None = None, model=None) -> None:
        self.torch = import_torch()
        self.name = name
        if window < 4 * overlap or overlap < 0:
            raise ModelError(f"ViTMatte window {window} must be at least 4x its overlap {overlap}")
        self.window, self.overlap = int(window), int(overlap)
        self.device = resolve_device(device)
        self.half = default_half(self.device) if half is None else half
        self.model = (model if model is not None else load_vitmatte(folder)).to(self.device).eval()
        self._lock = threading.Lock()
        log.info("loaded refiner %s (ViTMatte, %d px windows, %d px overlap) from %s on %s%s", name, window,
                 overlap, folder, describe(self.device), " with reduced-precision autocast" if self.half else "")

    def predict_window(self, rgb: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """One network pass: uint8 (h, w, 3), uint8 (h, w) -> alpha float32 (h, w) in 0..1."""
        torch = self.torch
        h, w = trimap.shape
        x = vitmatte_inputs(rgb, trimap).to(self.device)
        with self._lock, torch.inference_mode():
            out = run_guarded(self, lambda: self.model(pixel_values=x).alphas, f"refiner {self.name}")
        return out[0, 0, :h, :w].float().cpu().numpy()

    def refine(self, rgb: np.ndarray, trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        unknown = trimap == UNKNOWN
        alpha = known_alpha(trimap, coarse)
        tile, pad = self.window - 2 * self.overlap, self.overlap
        windows = list(band_tiles(unknown, tile, pad))
        if not windows:
            return alpha
        cells = [((r.start + ir.start) // tile, (c.start + ic.start) // tile) for r, c, ir, ic in windows]
        active = set(cells)
        alpha[unknown] = 0.0  # every unknown pixel gets a convex combination of window predictions
        for (rows, cols, _, _), cell in zip(windows, cells):
            pred = self.predict_window(rgb[rows, cols], trimap[rows, cols])
            mask = unknown[rows, cols]
            target = alpha[rows, cols]
            target[mask] += (pred * blend_weights(trimap.shape, tile, pad, cell, active))[mask]
        return np.clip(alpha, 0.0, 1.0, out=alpha)


def refiner_from_spec(spec, options=None) -> VitMatteRefiner:
    """The refiner for a registry entry (``backend == "vitmatte"``); window settings from ``spec.extra``.

    ``options``: :class:`bgclear.engines.EngineOptions` (its device and threads), or a device name.
    """
    device, threads = device_and_threads(options)
    from ..models.local import checkpoint_path

    folder = checkpoint_path(spec).parent
    extra = spec.extra
    set_threads(threads)
    return VitMatteRefiner(folder, name=spec.name, device=device, window=int(extra.get("window", 1024)),
                           overlap=int(extra.get("overlap", 128)))
