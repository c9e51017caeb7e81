"""The engine: decode -> segment -> settle -> trimap -> matte -> foreground -> compose.

:class:`Session` loads the models once and is safe to share between threads;
:func:`remove` is the one-call entry point used by the CLI, the server and
library users. A removal is two steps: :meth:`Session.prepare` (decode and the
automatic segmentation, once per image) and :meth:`Session.finish` (everything
from the segmenter's probability to the composed pixels), so work that depends
only on the image is not repeated when the rest changes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import compose as compose_stage
from .backends import DEFAULT_REFINER, make_refiner, make_segmenter
from .cutout import Cutout
from .decode import DEFAULT_MAX_PIXELS, DecodedImage, ImageSource, decode
from .engines import EngineOptions
from .files import write_atomic
from .foreground import estimate_foreground
from .models.registry import DEFAULT_SEGMENTER
from .segment import upsample_probability
from .settle import settle_unsure
from .tiles import working_scale
from .trimap import band_radius, make_trimap

__all__ = ["Cutout", "Prepared", "Session", "get_session", "matte_from_probability", "remove", "write_atomic"]

log = logging.getLogger("bgclear")

#: Long side of the working size for settling and the trimap (ISNet's own input is 1024).
WORKING_SIDE = 1024


def matte_from_probability(
    rgb: np.ndarray, prob: np.ndarray, refiner, settle: bool = True, timings: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Everything between the segmenter and the foreground stage.

    ``rgb`` uint8 (H, W, 3); ``prob`` float32 (h, w) at the segmenter's resolution.
    Returns (alpha, coarse, trimap) at (H, W): the refined alpha, the upsampled
    (and settled) probability, and the trimap the refiner worked in.
    """
    timings = {} if timings is None else timings
    h, w = rgb.shape[:2]
    t = time.perf_counter()
    # Deciding regions and drawing the band are about shapes, not pixels: do them at a
    # working size near the segmenter's own, then bring the trimap to full size.
    factor, work_size = working_scale(w, h, WORKING_SIDE)
    work_rgb = cv2.resize(rgb, work_size, interpolation=cv2.INTER_AREA) if factor > 1 else rgb
    work_prob = upsample_probability(prob, work_size)
    if settle:
        work_prob = settle_unsure(work_rgb, work_prob)
    radius = max(2, int(round(band_radius(w, h) / factor)))
    trimap = make_trimap(work_prob, radius=radius)
    if factor > 1:
        trimap = cv2.resize(trimap, (w, h), interpolation=cv2.INTER_NEAREST)
    coarse = upsample_probability(work_prob, (w, h))
    timings["trimap"] = time.perf_counter() - t
    t = time.perf_counter()
    alpha = refiner.refine(rgb, trimap, coarse)
    timings["matte"] = time.perf_counter() - t
    return alpha, coarse, trimap


def _as_shadow(shadow: bool | compose_stage.Shadow | None) -> compose_stage.Shadow | None:
    if shadow is True:
        return compose_stage.Shadow()
    if shadow is False or shadow is None:
        return None
    return shadow


@dataclass
class Prepared:
    """An image made ready once, finished any number of times.

    ``decoded``: the decoded photo (uint8 (H, W, 3) sRGB and its own alpha, if any).
    ``probability``: float32 (h, w) in 0..1, the automatic segmenter's output at its own resolution.
    """

    decoded: DecodedImage
    probability: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class Session:
    """Loaded models, reusable across calls and threads.

    ``segmenter``: a registry name (``bgclear models list``); ``refiner``: ``guided``
    (default), ``closed-form``, ``none``, or a learned refiner when installed;
    ``settle``: decide the segmenter's unsure regions from colour evidence;
    ``engine`` / ``precision``: the inference runtime (``auto``, ``onnxruntime``,
    ``openvino``) and its precision (``auto``, ``f32``, ``bf16``); ``threads``:
    intra-op threads of the networks (``None``: one per core).
    """

    def __init__(
        self, segmenter: str = DEFAULT_SEGMENTER, refiner: str = DEFAULT_REFINER, device: str = "cpu",
        settle: bool = True, engine: str = "auto", precision: str = "auto", threads: int | None = None,
    ) -> None:
        t0 = time.perf_counter()
        self.settle = settle
        self.segmenter_name = segmenter
        self.refiner_name = refiner
        self.device = device
        self.options = EngineOptions(engine=engine, precision=precision, device=device, threads=threads)
        self.segmenter = make_segmenter(segmenter, options=self.options)
        self.refiner = make_refiner(refiner, options=self.options)
        self.load_seconds = time.perf_counter() - t0
        log.info("session ready: segmenter=%s refiner=%s %s (%.2fs)", segmenter, refiner, self.describe(), self.load_seconds)

    def describe(self) -> str:
        """Where the segmenter runs, e.g. 'openvino bf16 on cpu'."""
        engine = getattr(self.segmenter, "engine", None)
        if engine is None:
            return f"torch on {self.device}"
        return f"{engine.name} {engine.precision} on {engine.device}"

    def matte(self, rgb: np.ndarray, timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 (H, W, 3) -> (alpha float32 (H, W), coarse float32 (H, W), trimap uint8 (H, W))."""
        timings = {} if timings is None else timings
        t = time.perf_counter()
        prob = self.segmenter.predict(rgb)
        timings["segment"] = time.perf_counter() - t
        return matte_from_probability(rgb, prob, self.refiner, self.settle, timings)

    def prepare(self, source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prepared:
        """Decode ``source`` and run the automatic segmenter: the work that depends on the image alone."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        decoded = decode(source, max_pixels=max_pixels)
        timings["decode"] = time.perf_counter() - t
        t = time.perf_counter()
        probability = self.segmenter.predict(decoded.rgb)
        timings["segment"] = time.perf_counter() - t
        return Prepared(decoded=decoded, probability=probability, timings=timings)

    def finish(
        self,
        prepared: Prepared,
        background: str | tuple[int, int, int] | None = None,
        shadow: bool | compose_stage.Shadow | None = None,
        crop: bool = False,
        crop_margin: int | str = "2%",
    ) -> Cutout:
        """Trimap, matting at full resolution, foreground colours and compose, from a prepared image."""
        bg = compose_stage.parse_color(background)
        shadow_opts = _as_shadow(shadow)
        decoded = prepared.decoded
        timings = dict(prepared.timings)
        alpha, coarse, trimap = matte_from_probability(decoded.rgb, prepared.probability, self.refiner, self.settle, timings)
        del coarse  # full-resolution float map: not worth keeping in every result
        if decoded.source_alpha is not None:
            # Pixels the file already marked transparent stay transparent.
            alpha = alpha * decoded.source_alpha
        t = time.perf_counter()
        foreground = estimate_foreground(decoded.rgb, alpha)
        timings["foreground"] = time.perf_counter() - t
        t = time.perf_counter()
        pixels, box = compose_stage.compose(foreground, alpha, bg, shadow_opts, crop, crop_margin)
        timings["compose"] = time.perf_counter() - t
        for message in decoded.warnings:
            log.info("%s", message)
        return Cutout(
            alpha=alpha, foreground=foreground, pixels=pixels, probability=prepared.probability, trimap=trimap,
            crop_box=box, background=bg, warnings=list(decoded.warnings), timings=timings,
            source_format=decoded.format,
        )

    def remove(
        self,
        source: ImageSource,
        background: str | tuple[int, int, int] | None = None,
        shadow: bool | compose_stage.Shadow | None = None,
        crop: bool = False,
        crop_margin: int | str = "2%",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Cutout:
        """Remove the background of one image. See :func:`bgclear.remove`."""
        bg = compose_stage.parse_color(background)  # bad options fail before any work
        _as_shadow(shadow)
        prepared = self.prepare(source, max_pixels=max_pixels)
        return self.finish(prepared, background=bg, shadow=shadow, crop=crop, crop_margin=crop_margin)


_default_sessions: dict[tuple, Session] = {}
_default_lock = threading.Lock()


def get_session(
    segmenter: str = DEFAULT_SEGMENTER, refiner: str = DEFAULT_REFINER, device: str = "cpu",
    engine: str = "auto", precision: str = "auto", threads: int | None = None,
) -> Session:
    """The process-wide session for this configuration, created on first use."""
    key = (segmenter, refiner, device, engine, precision, threads)
    with _default_lock:
        if key not in _default_sessions:
            _default_sessions[key] = Session(segmenter, refiner, device, engine=engine, precision=precision, threads=threads)
        return _default_sessions[key]


def remove(
    source: ImageSource,
    *,
    session: Session | None = None,
    segmenter: str = DEFAULT_SEGMENTER,
    refiner: str = DEFAULT_REFINER,
    background: str | tuple[int, int, int] | None = None,
    shadow: bool | compose_stage.Shadow | None = None,
    crop: bool = False,
    crop_margin: int | str = "2%",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Cutout:
    """Remove the background of an image.

    ``source``: a path, encoded bytes, a PIL image or an ndarray (H, W[, 3|4]).
    Returns a :class:`Cutout` at the source's full resolution. Raises
    :class:`~bgclear.errors.InputError` for unusable input and
    :class:`~bgclear.errors.ModelError` when the model is not installed.
    Without ``session`` a shared one is created on first use and reused.
    """
    session = session or get_session(segmenter, refiner)
    return session.remove(source, background=background, shadow=shadow, crop=crop, crop_margin=crop_margin, max_pixels=max_pixels)
