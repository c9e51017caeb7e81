"""InSPyReNet as a bgclear segmenter (``predict(rgb) -> probability``).

Modes (``spec.extra["mode"]``):

- ``base``: one pass on the photo resized to ``base_size`` (1024 x 1024 for
  ``ckpt_base.pth``), as transparent-background's default.
- ``fast``: the same at 384 x 384 (``ckpt_fast.pth``).
- ``pyramid``: the paper's high-resolution inference — a pass at ``base_size``
  and a pass at ``hr_side`` (shorter side, multiple of 32), blended through the
  inverse saliency pyramid so the HR pass only adds detail near the LR edges.
  Photos whose HR size is not above ``threshold`` get the LR pass alone.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from PIL import Image

from ..errors import ModelError
from ..models.registry import ModelSpec
from ..engines.torch import default_half, describe, device_and_threads, import_torch, resolve_device, run_guarded, set_threads

log = logging.getLogger("bgclear")

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
MODES = ("base", "fast", "pyramid")


def hr_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(w, h) with the shorter side capped at ``side`` (never enlarged), both rounded to multiples of 32."""
    short = min(width, height)
    scale = side / short if short > side else 1.0
    return max(32, int(round(width * scale / 32)) * 32), max(32, int(round(height * scale / 32)) * 32)


def to_tensor(rgb: np.ndarray, size: tuple[int, int]):
    """uint8 (H, W, 3) -> float32 (1, 3, size[1], size[0]) ImageNet-normalised, bilinear-resized with PIL
    (as the checkpoints' own inference code resizes)."""
    torch = import_torch()
    img = Image.fromarray(rgb)
    if img.size != tuple(size):
        img = img.resize(tuple(size), Image.BILINEAR)
    x = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


class InSPyReNetSegmenter:
    """Loads a checkpoint once; ``predict`` is thread-safe (one forward at a time per instance)."""

    def __init__(self, spec: ModelSpec, options=None, half: bool | None = None) -> None:
        """``options``: :class:`bgclear.engines.EngineOptions` (its device and threads), or a device name."""
        torch = import_torch()  # first, so a missing torch is reported as such
        device, threads = device_and_threads(options)
        set_threads(threads)
        from ..networks.inspyrenet.checkpoints import load_inspyrenet
        from ..models.local import checkpoint_path

        self.spec, self.name = spec, spec.name
        extra = spec.extra
        self.mode = extra.get("mode", "base")
        if self.mode not in MODES:
            raise ModelError(f"model {spec.name!r}: unknown InSPyReNet mode {self.mode!r}; use one of {MODES}")
        side = int(extra.get("base_size", 384 if self.mode == "fast" else 1024))
        self.base_size = (side, side)
        self.hr_side = int(extra.get("hr_side", 1280 if side <= 512 else 2048))
        self.threshold = int(extra.get("threshold", side * 4 // 3))
        self.device = resolve_device(device)
        self.half = default_half(self.device) if half is None else half
        path = checkpoint_path(spec)
        model, self.arch = load_inspyrenet(path, self.base_size)
        self.model = model.to(self.device)
        self._lock = threading.Lock()
        self._torch = torch
        log.info("loaded segmenter %s (InSPyReNet %s, %s mode, base %d) from %s on %s%s", spec.name,
                 self.arch["backbone"], self.mode, side, path, describe(self.device), " with reduced-precision autocast" if self.half else "")

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> float32 (h, w) in 0..1 at the model's working resolution."""
        torch = self._torch
        h, w = rgb.shape[:2]
        lr = to_tensor(rgb, (self.base_size[1], self.base_size[0])).to(self.device)
        hr_w, hr_h = hr_size(w, h, self.hr_side)
        blend = self.mode == "pyramid" and min(hr_w, hr_h) > self.threshold
        hr = to_tensor(rgb, (hr_w, hr_h)).to(self.device) if blend else None
        with self._lock, torch.inference_mode():
            prob = run_guarded(self, lambda: self.model.predict_blended(hr, lr) if blend else self.model.predict(lr),
                               f"segmenter {self.name}")
        return prob[0, 0].float().cpu().numpy()
