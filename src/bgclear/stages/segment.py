"""Stage 2 — segmentation: sRGB pixels in, a coarse foreground probability out.

A segmenter is anything with ``predict(rgb) -> prob``; the ONNX one here runs
every model in the registry from its entry alone. Learned backends (InSPyReNet)
implement the same protocol.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Protocol

import cv2
import numpy as np

from ..engines import EngineOptions, load_onnx
from ..models.int8 import quantized_model
from ..models.registry import ModelSpec
from ..models.store import model_path

log = logging.getLogger(__name__)


class Segmenter(Protocol):
    name: str

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` uint8 (H, W, 3) -> float32 (h, w) foreground probability in 0..1.

        (h, w) may be the model's own resolution; callers resize it to (H, W).
        """
        ...


def resize_for_model(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (H, W, 3) to (size[1], size[0], 3) for the network.

    Shrinking averages areas, which avoids aliasing. Enlarging (photos under the
    model's 1024 px) uses Lanczos: bilinear enlargement low-passes the edges, the
    network then sees a soft outline and answers with a soft, grey mask (on the
    17 alphamatting photos, ~800 px, raw ISNet Gradient error 19.7 -> 15.9).
    """
    h, w = rgb.shape[:2]
    shrinking = size[0] < w and size[1] < h
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def upsample_probability(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear float32 resize of a (h, w) map to ``size`` = (W, H), clipped to 0..1."""
    if prob.shape[::-1] == tuple(size):
        return prob.astype(np.float32, copy=False)
    out = cv2.resize(prob.astype(np.float32, copy=False), size, interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def model_input(spec: ModelSpec, rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (1, 3, h, w), resized and normalised as the registry entry says:
    to ``spec.input_size``, or (models that take any size) long side 1024 in multiples of
    ``spec.size_multiple``."""
    height, width = rgb.shape[:2]
    if spec.input_size:
        size = spec.input_size
    else:
        m, scale = spec.size_multiple, 1024 / max(width, height)
        size = (max(m, round(width * scale / m) * m), max(m, round(height * scale / m) * m))
    x = resize_for_model(rgb, size).astype(np.float32)
    x /= spec.scale
    x -= np.asarray(spec.mean, np.float32)
    x /= np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


#: Int8 answers a photo only where the network is sure of most of it: with more than this
#: share of pixels between 0.2 and 0.8, the photo is answered again without int8. Int8 moves
#: probabilities by ~0.004 on average; where the network is sure that changes nothing, but over a
#: wide unsure region settle decides whole regions on those values (dev photos with 9-29 % unsure
#: moved by up to 22 SAD, those under 6 % by at most 1.2: docs/BENCHMARKS.md).
INT8_UNSURE_LIMIT = 0.03


def unsure_fraction(prob: np.ndarray) -> float:
    """Share of the values of ``prob`` (any shape, 0..1 probabilities) strictly between 0.2 and 0.8."""
    return float(((prob > 0.2) & (prob < 0.8)).mean())


class OnnxSegmenter:
    """Runs a registry entry's ONNX file on an engine (:mod:`bgclear.engines`). Thread-safe; load once, reuse.

    Everything about the model's input and output (size, normalisation, output
    scaling) is read from the registry entry here, for every engine.
    """

    def __init__(self, spec: ModelSpec, options: EngineOptions | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self._path = path = model_path(spec)
        self._options = options = options or EngineOptions()
        # a damaged int8 file is an error when int8 is asked for, and never read otherwise
        int8 = quantized_model(spec) if options.precision == "int8" else None
        self.engine = load_onnx(path, options, what=f"segmenter {spec.name}", outputs=[spec.output_name or 0],
                                int8=int8)
        self._careful = None
        self._careful_lock = threading.Lock()
        self._input = self.engine.input_names()[0]
        log.info("loaded segmenter %s from %s (%s %s on %s)", spec.name, path, self.engine.name,
                 self.engine.precision, self.engine.device)

    @property
    def guarded(self) -> bool:
        """Whether each answer is checked (int8 ones are: see :meth:`predict`)."""
        return self.engine.precision == "int8"

    def _careful_engine(self):
        """The same network without int8 (bf16 or f32, as ``auto`` picks), loaded at first need."""
        with self._careful_lock:
            if self._careful is None:
                options = dataclasses.replace(self._options, precision="auto")
                self._careful = load_onnx(self._path, options, what=f"segmenter {self.spec.name}",
                                          outputs=[self.spec.output_name or 0])
            return self._careful

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> float32 (1, 3, h, w): :func:`model_input`."""
        return model_input(self.spec, rgb)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        x = self.preprocess(rgb)
        out = self.engine.run({self._input: x})[0]
        if self.guarded and (share := unsure_fraction(out)) > INT8_UNSURE_LIMIT:
            log.debug("%s int8 is unsure of %.1f %% of this photo; answered again without int8", self.name, 100 * share)
            out = self._careful_engine().run({self._input: x})[0]
        prob = np.asarray(out, np.float32).reshape(out.shape[-2:])
        if self.spec.output_norm == "minmax":
            lo, hi = float(prob.min()), float(prob.max())
            prob = (prob - lo) / max(hi - lo, 1e-6)
        return np.clip(prob, 0.0, 1.0)
