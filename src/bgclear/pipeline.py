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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .stages import compose as compose_stage
from .backends import DEFAULT_REFINER, make_refiner, make_segmenter
from .cutout import Cutout
from .io.decode import DEFAULT_MAX_PIXELS, DecodedImage, ImageSource, decode
from .engines import EngineOptions
from .errors import InputError
from .memo import ByteBoundedCache, pixels_key
from .io.files import write_atomic
from .stages.foreground import estimate_foreground
from .stages.ondevice import finish_on_device, stages_device
from .models.registry import DEFAULT_SEGMENTER
from .promptable import Embedding, PromptableSegmenter
from .stages.segment import upsample_probability
from .stages.settle import settle_unsure
from .stages.tiles import working_scale
from .stages.touchup import Box, Point, check_prompts, second_opinion, touch_up
from .stages.trimap import working_trimap

__all__ = ["Cutout", "Prepared", "Session", "get_session", "matte_from_probability", "remove", "write_atomic"]

log = logging.getLogger("bgclear")

#: The model that answers keep / remove points and boxes.
DEFAULT_PROMPTABLE = "mobilesam"
#: Memory for per-image work kept between calls (about 8 MB an image: ~30 photos).
DEFAULT_CACHE_BYTES = 256 * 2**20

#: Long side of the working size for settling and the trimap (ISNet's own input is 1024).
WORKING_SIDE = 1024


def working_probability(rgb: np.ndarray, prob: np.ndarray, settle: bool = True) -> np.ndarray:
    """The segmenter's probability at the working size, its unsure regions settled.

    ``rgb`` uint8 (H, W, 3); ``prob`` float32 (h, w) in 0..1 at the segmenter's resolution.
    Returns float32 (h', w') in 0..1 with the long side ~:data:`WORKING_SIDE` (never enlarged).
    Deciding regions is about shapes, not pixels: it is done at a size near the segmenter's own.
    """
    h, w = rgb.shape[:2]
    factor, work_size = working_scale(w, h, WORKING_SIDE)
    work_prob = upsample_probability(prob, work_size)
    if settle:
        work_rgb = cv2.resize(rgb, work_size, interpolation=cv2.INTER_AREA) if factor > 1 else rgb
        work_prob = settle_unsure(work_rgb, work_prob)
    return work_prob


def matte_full_resolution(
    rgb: np.ndarray, work_prob: np.ndarray, refiner, timings: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trimap at the working size, brought to full size, and matting at every native band pixel.

    ``rgb`` uint8 (H, W, 3); ``work_prob`` float32 (h', w') in 0..1 (:func:`working_probability`,
    possibly touched up). Returns (alpha, coarse, trimap) at (H, W): the refined alpha float32,
    the upsampled probability float32 and the trimap uint8 the refiner worked in.
    """
    timings = {} if timings is None else timings
    h, w = rgb.shape[:2]
    t = time.perf_counter()
    trimap = working_trimap(work_prob, (w, h))
    if trimap.shape != (h, w):
        trimap = cv2.resize(trimap, (w, h), interpolation=cv2.INTER_NEAREST)
    coarse = upsample_probability(work_prob, (w, h))
    timings["trimap"] = timings.get("trimap", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    alpha = refiner.refine(rgb, trimap, coarse)
    timings["matte"] = time.perf_counter() - t
    return alpha, coarse, trimap


def matte_from_probability(
    rgb: np.ndarray, prob: np.ndarray, refiner, settle: bool = True, timings: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Everything between the segmenter and the foreground stage, without prompts.

    ``rgb`` uint8 (H, W, 3); ``prob`` float32 (h, w) at the segmenter's resolution.
    Returns (alpha, coarse, trimap) at (H, W), as :func:`matte_full_resolution`.
    """
    timings = {} if timings is None else timings
    t = time.perf_counter()
    work_prob = working_probability(rgb, prob, settle)
    timings["trimap"] = time.perf_counter() - t
    return matte_full_resolution(rgb, work_prob, refiner, timings)


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
    ``key``: a digest of the decoded pixels, under which the session caches work on this image.
    """

    decoded: DecodedImage
    probability: np.ndarray
    key: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class Session:
    """Loaded models, reusable across calls and threads.

    ``segmenter``: a registry name (``bgclear models list``); ``refiner``: ``guided``
    (default), ``closed-form``, ``none``, or a learned refiner when installed;
    ``settle``: decide the segmenter's unsure regions from colour evidence;
    ``engine`` / ``precision``: the inference runtime (``auto``, ``onnxruntime``,
    ``openvino``) and its precision (``auto``, ``f32``, ``bf16``); ``threads``:
    intra-op threads of the networks (``None``: one per core).
    ``promptable``: the model that answers keep / remove points and boxes, loaded on
    the first call that has them; ``cache_bytes``: memory for per-image work of
    touch-up calls (automatic segmentation, prompt embeddings) kept between calls,
    keyed by the decoded pixels and never written to disk (0 turns it off);
    ``cache_seconds``: how long an unused entry may stay (``None``: no limit).
    ``second_opinion``: without prompts too, let the promptable segmenter check the automatic
    segmentation (its box and probability as prompts; one more encoder pass per photo).
    ``stages_device`` (attribute): the torch device that matting, foreground and compose run on
    (a CUDA session with the guided refiner; ``None``: numpy on the CPU); tests and benchmarks
    assign ``torch.device("cpu")`` to run that path here (:mod:`bgclear.stages.ondevice`).
    """

    def __init__(
        self, segmenter: str = DEFAULT_SEGMENTER, refiner: str = DEFAULT_REFINER, device: str = "cpu",
        settle: bool = True, engine: str = "auto", precision: str = "auto", threads: int | None = None,
        promptable: str = DEFAULT_PROMPTABLE, cache_bytes: int = DEFAULT_CACHE_BYTES,
        cache_seconds: float | None = None, second_opinion: bool = False,
    ) -> None:
        t0 = time.perf_counter()
        self.settle = settle
        self.segmenter_name = segmenter
        self.refiner_name = refiner
        self.device = device
        self.options = EngineOptions(engine=engine, precision=precision, device=device, threads=threads)
        self.segmenter = make_segmenter(segmenter, options=self.options)
        self.refiner = make_refiner(refiner, options=self.options)
        self.stages_device = stages_device(device, self.segmenter, self.refiner)
        self.promptable_name = promptable
        self._promptable: PromptableSegmenter | None = None
        self._promptable_lock = threading.Lock()
        self.cache = ByteBoundedCache(cache_bytes, max_age=cache_seconds)
        self.second_opinion = second_opinion
        self.load_seconds = time.perf_counter() - t0
        log.info("session ready: segmenter=%s refiner=%s %s (%.2fs)", segmenter, refiner, self.describe(), self.load_seconds)

    def describe(self) -> str:
        """Where the segmenter runs, e.g. 'openvino bf16 on cpu'."""
        engine = getattr(self.segmenter, "engine", None)
        if engine is None:
            return f"torch on {self.device}"
        return f"{engine.name} {engine.precision} on {engine.device}"

    @property
    def promptable(self) -> PromptableSegmenter:
        """The promptable segmenter, loaded on first use, on the session's engine and precision (bf16
        answered the 37 grabcut_dev photos as well as f32: docs/BENCHMARKS.md, MobileSAM runtime).
        It has no int8 version: under ``precision="int8"`` it runs as under ``auto``."""
        with self._promptable_lock:
            if self._promptable is None:
                options = self.options
                if options.precision == "int8":
                    options = replace(options, precision="auto")
                self._promptable = PromptableSegmenter(self.promptable_name, options)
            return self._promptable

    def prepare(self, source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, reuse: bool = False) -> Prepared:
        """Decode ``source`` and run the automatic segmenter: the work that depends on the image alone.

        With ``reuse`` the work on this image is kept in the session's cache and taken from it
        when these pixels were seen before (touch-up calls: each click sends the photo again);
        without it nothing about the image outlives the call.
        """
        timings: dict[str, float] = {}
        t = time.perf_counter()
        decoded = decode(source, max_pixels=max_pixels)
        timings["decode"] = time.perf_counter() - t
        key = pixels_key(decoded.rgb) if reuse and self.cache.max_bytes else ""
        probability = self.cache.get(key, "probability") if key else None
        if probability is None:
            t = time.perf_counter()
            probability = self.segmenter.predict(decoded.rgb)
            timings["segment"] = time.perf_counter() - t
            if key:
                self.cache.put(key, "probability", probability)
        return Prepared(decoded=decoded, probability=probability, key=key, timings=timings)

    def embedding(self, prepared: Prepared, timings: dict[str, float] | None = None) -> Embedding:
        """The promptable segmenter's embedding of a prepared image, computed once per image while cached."""
        found = self.cache.get(prepared.key, "embedding") if prepared.key else None
        if found is not None:
            return found
        t = time.perf_counter()
        embedding = self.promptable.embed(prepared.decoded.rgb)
        if timings is not None:
            timings["embed"] = time.perf_counter() - t
        if prepared.key:
            self.cache.put(prepared.key, "embedding", embedding)
        return embedding

    def probability(
        self, prepared: Prepared, keep: Sequence[Point] = (), drop: Sequence[Point] = (),
        box: Box | None = None, start: str = "auto", timings: dict[str, float] | None = None,
        order: Sequence[bool] | None = None,
    ) -> np.ndarray:
        """float32 (h', w') in 0..1 at the working size: the settled automatic segmentation, touched up
        by the prompts when there are any. ``start="empty"`` ignores the automatic segmentation
        (the click protocol's from-scratch start; ``order``: the kinds of the clicks in the order
        they were made, True for keep, which that start depends on). Raises :class:`InputError`
        for bad prompts."""
        timings = {} if timings is None else timings
        rgb = prepared.decoded.rgb
        work = self.cache.get(prepared.key, "working") if prepared.key else None
        if work is None:  # settled once per image: every click starts from the same automatic answer
            t = time.perf_counter()
            work = working_probability(rgb, prepared.probability, self.settle)
            timings["trimap"] = time.perf_counter() - t
            if prepared.key:
                self.cache.put(prepared.key, "working", work)
        prompted = bool(keep or drop or box is not None)
        if prompted and start not in ("auto", "empty"):
            raise InputError("invalid_option", f"unknown start {start!r}; use 'auto' or 'empty'")
        if prompted:
            check_prompts(keep, drop, box, prepared.decoded.size)  # before the encoder's second
        checked = self.second_opinion and (not prompted or start == "auto")
        if not (prompted or checked):
            return work
        embedding = self.embedding(prepared, timings)  # once: without a cache key it is not kept
        if checked:
            # Clicks start from the cutout the user saw, so they start from the second opinion too.
            t = time.perf_counter()
            work = self._remember(prepared, "second opinion", lambda: second_opinion(self.promptable, embedding, work))
            timings["prompts"] = time.perf_counter() - t
        if not prompted:
            return work
        t = time.perf_counter()
        prob = touch_up(self.promptable, embedding, work if start == "auto" else None, keep, drop, box, order,
                        remember=lambda name, compute: self._remember(prepared, name, compute))
        if prob.shape != work.shape:
            prob = upsample_probability(prob, (work.shape[1], work.shape[0]))
        timings["prompts"] = timings.get("prompts", 0.0) + time.perf_counter() - t
        return prob

    def _remember(self, prepared: Prepared, name: str, compute):
        """``compute()``, kept with the image in the session's cache (decoder answers to clicks)."""
        found = self.cache.get(prepared.key, name) if prepared.key else None
        if found is None:
            found = compute()
            if prepared.key:
                self.cache.put(prepared.key, name, found)
        return found

    def finish(
        self,
        prepared: Prepared,
        background: str | tuple[int, int, int] | None = None,
        shadow: bool | compose_stage.Shadow | None = None,
        crop: bool = False,
        crop_margin: int | str = "2%",
        keep: Sequence[Point] = (),
        drop: Sequence[Point] = (),
        box: Box | None = None,
        max_side: int | None = None,
    ) -> Cutout:
        """Prompts (if any), trimap, matting at full resolution, foreground colours and compose.

        ``max_side``: a preview. The photo is shrunk so its long side is at most this, and
        matting, foreground and compose run on the smaller pixels. The edges are matted from
        those pixels, not scaled down from a full-size result. A touch-up answers each click
        this way at a cost that does not grow with the photo; the download then runs at full
        resolution.
        """
        bg = compose_stage.parse_color(background)
        shadow_opts = _as_shadow(shadow)
        decoded = prepared.decoded
        timings = dict(prepared.timings)
        work = self.probability(prepared, keep, drop, box, timings=timings)
        rgb, source_alpha = decoded.rgb, decoded.source_alpha
        if max_side and max(rgb.shape[:2]) > max_side:
            scale = max_side / max(rgb.shape[:2])
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            if source_alpha is not None:
                source_alpha = cv2.resize(source_alpha, size, interpolation=cv2.INTER_AREA)
        if self.stages_device is not None:  # one upload, one download: stages/ondevice
            alpha, foreground, trimap, pixels, crop_box = finish_on_device(
                self.stages_device, rgb, source_alpha, work, self.refiner, bg, shadow_opts, crop, crop_margin, timings)
        else:
            alpha, coarse, trimap = matte_full_resolution(rgb, work, self.refiner, timings)
            del coarse  # full-resolution float map: not worth keeping in every result
            if source_alpha is not None:
                # Pixels the file already marked transparent stay transparent.
                alpha = alpha * source_alpha
            t = time.perf_counter()
            foreground = estimate_foreground(rgb, alpha)
            timings["foreground"] = time.perf_counter() - t
            t = time.perf_counter()
            pixels, crop_box = compose_stage.compose(foreground, alpha, bg, shadow_opts, crop, crop_margin)
            timings["compose"] = time.perf_counter() - t
        for message in decoded.warnings:
            log.info("%s", message)
        return Cutout(
            alpha=alpha, foreground=foreground, pixels=pixels, probability=prepared.probability, trimap=trimap,
            crop_box=crop_box, background=bg, warnings=list(decoded.warnings), timings=timings,
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
        keep: Sequence[Point] = (),
        drop: Sequence[Point] = (),
        box: Box | None = None,
    ) -> Cutout:
        """Remove the background of one image. See :func:`bgclear.remove`."""
        bg = compose_stage.parse_color(background)  # bad options fail before any work
        _as_shadow(shadow)
        prompted = bool(keep or drop or box is not None)
        if prompted:
            check_prompts(keep, drop, box)
        prepared = self.prepare(source, max_pixels=max_pixels, reuse=prompted)
        return self.finish(prepared, background=bg, shadow=shadow, crop=crop, crop_margin=crop_margin,
                           keep=keep, drop=drop, box=box)


_default_sessions: dict[tuple, Session] = {}
_default_lock = threading.Lock()


def get_session(
    segmenter: str = DEFAULT_SEGMENTER, refiner: str = DEFAULT_REFINER, device: str = "cpu",
    engine: str = "auto", precision: str = "auto", threads: int | None = None, second_opinion: bool = False,
) -> Session:
    """The process-wide session for this configuration, created on first use."""
    key = (segmenter, refiner, device, engine, precision, threads, second_opinion)
    with _default_lock:
        if key not in _default_sessions:
            _default_sessions[key] = Session(segmenter, refiner, device, engine=engine, precision=precision, threads=threads,
                                             second_opinion=second_opinion)
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
    keep: Sequence[Point] = (),
    drop: Sequence[Point] = (),
    box: Box | None = None,
) -> Cutout:
    """Remove the background of an image.

    ``source``: a path, encoded bytes, a PIL image or an ndarray (H, W[, 3|4]).
    ``keep`` / ``drop``: (x, y) points on what must stay / go, and ``box`` (left, top,
    right, bottom) around the subject, in source pixels after EXIF orientation (x right,
    y down): they choose the object(s) with the promptable segmenter (``bgclear models
    pull mobilesam``); edges still come from matting at full resolution.
    Returns a :class:`Cutout` at the source's full resolution. Raises
    :class:`~bgclear.errors.InputError` for unusable input and
    :class:`~bgclear.errors.ModelError` when the model is not installed.
    Without ``session`` a shared one is created on first use and reused.
    """
    session = session or get_session(segmenter, refiner)
    return session.remove(source, background=background, shadow=shadow, crop=crop, crop_margin=crop_margin,
                          max_pixels=max_pixels, keep=keep, drop=drop, box=box)
