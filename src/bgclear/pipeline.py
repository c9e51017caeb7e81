"""The engine: decode -> segment -> trimap -> matte -> foreground -> compose -> encode.

:class:`Session` loads the models once and is safe to share between threads;
:func:`remove` is the one-call entry point used by the CLI, the server and
library users.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import compose as compose_stage
from .backends import DEFAULT_REFINER, make_refiner, make_segmenter
from .decode import DEFAULT_MAX_PIXELS, ImageSource, decode
from .encode import encode, normalise_format
from .foreground import estimate_foreground
from .models.registry import DEFAULT_SEGMENTER
from .segment import upsample_probability
from .settle import settle_unsure
from .tiles import working_scale
from .trimap import band_radius, make_trimap

log = logging.getLogger("bgclear")

#: Long side of the working size for settling and the trimap (ISNet's own input is 1024).
WORKING_SIDE = 1024


@dataclass
class Cutout:
    """The result of one removal.

    ``alpha``: float32 (H, W) in 0..1 at the source's full resolution.
    ``foreground``: uint8 (H, W, 3), estimated foreground colours (decontaminated).
    ``pixels``: uint8 output after compose: (h, w, 4) RGBA, or (h, w, 3) RGB when a
    background colour was chosen; cropped when ``crop_box`` is set.
    ``probability``: float32 (h, w), the segmenter's raw output at its own resolution.
    ``trimap``: uint8 (H, W) in {0, 128, 255}.
    """

    alpha: np.ndarray
    foreground: np.ndarray
    pixels: np.ndarray
    probability: np.ndarray
    trimap: np.ndarray
    crop_box: tuple[int, int, int, int] | None = None
    background: tuple[int, int, int] | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    source_format: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the source."""
        return self.alpha.shape[1], self.alpha.shape[0]

    @property
    def rgba(self) -> np.ndarray:
        """uint8 (H, W, 4): estimated foreground with alpha, uncropped, no background."""
        return np.dstack([self.foreground, self.alpha8])

    @property
    def alpha8(self) -> np.ndarray:
        """uint8 (H, W) alpha."""
        return np.clip(self.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)

    @property
    def image(self) -> Image.Image:
        """The composed output as a PIL image (RGBA, or RGB on a solid background)."""
        return Image.fromarray(self.pixels)

    @property
    def foreground_bbox(self) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) of the subject in source pixels."""
        return compose_stage.subject_box(self.alpha)

    def encode(self, fmt: str = "png", quality: int = 92, mask: bool = False) -> bytes:
        """File bytes of the output (or of the alpha matte alone with ``mask=True``)."""
        t0 = time.perf_counter()
        if mask:
            pixels = self.alpha8
            if self.crop_box:
                l, t, r, b = self.crop_box
                pixels = pixels[t:b, l:r]
        elif normalise_format(fmt) == "jpg" and self.pixels.shape[-1] == 4:
            pixels = self._flatten_white()  # keeps whatever compose added (shadow, crop)
        else:
            pixels = self.pixels
        data = encode(pixels, fmt, quality=quality)
        self.timings["encode"] = time.perf_counter() - t0
        return data

    def _flatten_white(self) -> np.ndarray:
        rgba = self.pixels.astype(np.float32)
        a = rgba[..., 3:4] / 255.0
        return np.clip(rgba[..., :3] * a + 255.0 * (1 - a) + 0.5, 0, 255).astype(np.uint8)

    def save(self, path: str | os.PathLike, fmt: str | None = None, quality: int = 92, mask: bool = False) -> Path:
        """Write atomically: a temporary file in the same folder, renamed when complete."""
        path = Path(path)
        fmt = fmt or (path.suffix.lstrip(".") or "png")
        data = self.encode(fmt, quality=quality, mask=mask)
        write_atomic(path, data)
        return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# mkstemp creates 0600 files; outputs get the permissions a plain open() would.
# Read once at import: os.umask is process-wide and not safe to toggle from worker threads.
_UMASK = _read_umask()


def _as_shadow(shadow: bool | compose_stage.Shadow | None) -> compose_stage.Shadow | None:
    if shadow is True:
        return compose_stage.Shadow()
    if shadow is False or shadow is None:
        return None
    return shadow


class Session:
    """Loaded models, reusable across calls and threads.

    ``segmenter``: a registry name (``bgclear models list``); ``refiner``: ``guided``
    (default), ``closed-form``, ``none``, or a learned refiner when installed;
    ``settle``: decide the segmenter's unsure regions from colour evidence.
    """

    def __init__(
        self, segmenter: str = DEFAULT_SEGMENTER, refiner: str = DEFAULT_REFINER, device: str = "cpu", settle: bool = True
    ) -> None:
        t0 = time.perf_counter()
        self.settle = settle
        self.segmenter_name = segmenter
        self.refiner_name = refiner
        self.device = device
        self.segmenter = make_segmenter(segmenter, device=device)
        self.refiner = make_refiner(refiner, device=device)
        self.load_seconds = time.perf_counter() - t0
        log.info("session ready: segmenter=%s refiner=%s device=%s (%.2fs)", segmenter, refiner, device, self.load_seconds)

    def matte(self, rgb: np.ndarray, timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 (H, W, 3) -> (alpha float32 (H, W), coarse float32 (H, W), trimap uint8 (H, W))."""
        timings = {} if timings is None else timings
        t = time.perf_counter()
        prob = self.segmenter.predict(rgb)
        timings["segment"] = time.perf_counter() - t
        return matte_from_probability(rgb, prob, self.refiner, self.settle, timings)

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
        bg = compose_stage.parse_color(background)
        shadow_opts = _as_shadow(shadow)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        decoded = decode(source, max_pixels=max_pixels)
        timings["decode"] = time.perf_counter() - t
        t = time.perf_counter()
        probability = self.segmenter.predict(decoded.rgb)
        timings["segment"] = time.perf_counter() - t
        alpha, coarse, trimap = matte_from_probability(decoded.rgb, probability, self.refiner, self.settle, timings)
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
            alpha=alpha, foreground=foreground, pixels=pixels, probability=probability, trimap=trimap,
            crop_box=box, background=bg, warnings=list(decoded.warnings), timings=timings,
            source_format=decoded.format,
        )


_default_sessions: dict[tuple[str, str, str], Session] = {}
_default_lock = threading.Lock()


def get_session(segmenter: str = DEFAULT_SEGMENTER, refiner: str = DEFAULT_REFINER, device: str = "cpu") -> Session:
    """The process-wide session for this configuration, created on first use."""
    key = (segmenter, refiner, device)
    with _default_lock:
        if key not in _default_sessions:
            _default_sessions[key] = Session(segmenter, refiner, device)
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
