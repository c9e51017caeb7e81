"""The cutout remove.bg's parameters ask for, on a worker thread.

The engine makes the matte and the foreground colours at the source's full
resolution; then, in this order: region of interest, semi-transparency, drop
shadow, layout (crop with margins, scale, position, the output size cap), the
background (a colour or the user's photo, fitted to cover) and the encoding
(png, jpg, webp, or zip = ``color.jpg`` + ``alpha.png``).
"""

from __future__ import annotations

import io
import math
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .. import Session
from ..stages.backdrop import fit_cover, over, place, restrict_to_box, without_semitransparency
from ..stages.compose import Shadow, _to_uint8, shadow_layer, subject_box
from ..io.decode import decode
from ..io.encode import MIME_TYPES, encode
from .removebg_params import Length, RemoveBgError, RemoveBgParams

MIME_TYPES_ZIP = {**MIME_TYPES, "zip": "application/zip"}
JPEG_QUALITY = 92


@dataclass
class RemoveBgResult:
    """The encoded answer and what its headers report (foreground box in output pixels)."""

    data: bytes
    format: str
    width: int
    height: int
    foreground: tuple[int, int, int, int]  # top, left, width, height
    source_size: tuple[int, int]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = 0.0

    @property
    def media_type(self) -> str:
        return MIME_TYPES_ZIP[self.format]


@dataclass(frozen=True)
class Layout:
    """Source pixels -> output pixels: ``out = source * scale + offset`` on a ``canvas`` (w, h)."""

    canvas: tuple[int, int]
    scale: float
    offset: tuple[float, float]

    def box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A source box (left, top, right, bottom) in output pixels, clipped to the canvas."""
        (cw, ch), k, (ox, oy) = self.canvas, self.scale, self.offset
        left, top = max(0, round(box[0] * k + ox)), max(0, round(box[1] * k + oy))
        right, bottom = min(cw, round(box[2] * k + ox)), min(ch, round(box[3] * k + oy))
        return left, top, max(left, right), max(top, bottom)


def _margins(margins: tuple[Length, Length, Length, Length], box: tuple[int, int, int, int]) -> tuple[float, ...]:
    """crop_margin in pixels: top/bottom relative to the subject's height, left/right to its width."""
    w, h = box[2] - box[0], box[3] - box[1]
    top, right, bottom, left = margins
    return top.pixels(h), right.pixels(w), bottom.pixels(h), left.pixels(w)


def layout(params: RemoveBgParams, size: tuple[int, int], subject: tuple[int, int, int, int],
           covered: tuple[int, int, int, int]) -> Layout:
    """Where the subject goes: ``size`` (W, H) of the source, ``subject`` the subject's box and
    ``covered`` the box of everything visible (subject and shadow), both in source pixels."""
    if params.crop:
        top, right, bottom, left = _margins(params.crop_margin, subject)
        canvas_box = (covered[0] - left, covered[1] - top, covered[2] + right, covered[3] + bottom)
    else:
        canvas_box = (0, 0, size[0], size[1])
    cw, ch = canvas_box[2] - canvas_box[0], canvas_box[3] - canvas_box[1]
    sw, sh = subject[2] - subject[0], subject[3] - subject[1]
    k = 1.0 if params.scale is None else params.scale * min(cw / sw, ch / sh)
    if params.position.kind == "original":
        # The subject's centre stays where it was on the canvas.
        cx, cy = (subject[0] + subject[2]) / 2 - canvas_box[0], (subject[1] + subject[3]) / 2 - canvas_box[1]
        x, y = cx - k * sw / 2, cy - k * sh / 2
    else:
        px, py = params.position.x, params.position.y
        x = px.pixels(cw - k * sw) if px.percent else px.value
        y = py.pixels(ch - k * sh) if py.percent else py.value
    offset = (x - k * subject[0], y - k * subject[1])
    # The size cap applies to the source (remove.bg resizes the input) and to the output.
    if params.max_megapixels is not None:
        f = min(1.0, math.sqrt(params.max_megapixels * 1e6 / max(size[0] * size[1], cw * ch)))
    else:
        f = 1.0
    # Rounded down: the cap is a maximum.
    out = (max(1, math.floor(cw * f + 1e-6)), max(1, math.floor(ch * f + 1e-6)))
    return Layout(out, k * f, (offset[0] * f, offset[1] * f))


def _backdrop(params: RemoveBgParams, bg_image: bytes | None, canvas: tuple[int, int], max_pixels: int) -> np.ndarray | None:
    """uint8 (h, w, 3|4) behind the subject, or None for transparent."""
    if bg_image is not None:
        photo = decode(bg_image, max_pixels=max_pixels)
        pixels = photo.rgb if photo.source_alpha is None else np.dstack([photo.rgb, _to_uint8(photo.source_alpha * 255.0)])
        return fit_cover(pixels, canvas)
    if params.bg_color is None:
        return None
    colour = params.bg_color if params.bg_color[3] < 255 else params.bg_color[:3]
    return np.broadcast_to(np.asarray(colour, np.uint8), (canvas[1], canvas[0], len(colour)))


def _encode(pixels: np.ndarray, fmt: str) -> tuple[bytes, str]:
    """Encoded bytes and the format used; ``auto`` is png when anything is transparent, else jpg."""
    if fmt == "auto":
        transparent = pixels.ndim == 3 and pixels.shape[2] == 4 and int(pixels[..., 3].min()) < 255
        fmt = "png" if transparent or pixels.ndim == 2 else "jpg"
    if fmt != "zip":
        return encode(pixels, fmt, quality=JPEG_QUALITY), fmt
    colour = pixels[..., :3] if pixels.ndim == 3 else np.dstack([pixels] * 3)
    alpha = pixels[..., 3] if pixels.ndim == 3 and pixels.shape[2] == 4 else np.full(pixels.shape[:2], 255, np.uint8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:  # both members are compressed already
        archive.writestr("color.jpg", encode(np.ascontiguousarray(colour), "jpg", quality=JPEG_QUALITY))
        archive.writestr("alpha.png", encode(np.ascontiguousarray(alpha), "png"))
    return buf.getvalue(), "zip"


#: A roi whose edges run through the automatic foreground along more than this fraction of their
#: length cuts a subject: it is a crop, not a choice of subjects.
ROI_CUT_FRACTION = 0.05


def roi_selects(prob: np.ndarray, roi: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    """Whether ``roi`` (left, top, right, bottom in source pixels of ``size`` = (W, H)) is drawn around
    subjects: it holds some of the automatic foreground (``prob`` float32 (h, w), 0..1, covering the
    whole source), and its edges inside the image cross it along at most :data:`ROI_CUT_FRACTION` of
    their length.

    Only such a roi goes to the promptable segmenter as a box: given a box through a subject it
    answers the background inside the box (seen on a disc halved by the roi), given one over
    background alone it makes an object of that background, and the whole image as a box says
    nothing at the cost of its encoder. Outside the roi is cleared either way.
    """
    (h, w), (width, height) = prob.shape, size
    left, top, right, bottom = roi
    x0, x1 = min(w - 1, left * w // width), min(w - 1, right * w // width)
    y0, y1 = min(h - 1, top * h // height), min(h - 1, bottom * h // height)
    fg = prob >= 0.5
    edges = [edge for inside, edge in ((left > 0, fg[y0:y1 + 1, x0]), (right < width, fg[y0:y1 + 1, x1]),
                                       (top > 0, fg[y0, x0:x1 + 1]), (bottom < height, fg[y1, x0:x1 + 1])) if inside]
    if not edges or not fg[y0:y1 + 1, x0:x1 + 1].any():
        return False
    return float(np.concatenate(edges).mean()) <= ROI_CUT_FRACTION


def render(session: Session, image: bytes, bg_image: bytes | None, params: RemoveBgParams, max_pixels: int) -> RemoveBgResult:
    """Runs on a worker thread. Raises InputError / RemoveBgError for unusable input."""
    started = time.perf_counter()
    decoded = decode(image, max_pixels=max_pixels)
    width, height = decoded.size
    roi = params.roi.box(width, height) if params.roi else None
    source = decoded.rgb if decoded.source_alpha is None else np.dstack([decoded.rgb, _to_uint8(decoded.source_alpha * 255.0)])
    prepared = session.prepare(source, max_pixels=max_pixels)
    # roi -> box prompt, when the roi is drawn around subjects: the promptable segmenter then looks for them inside it.
    box = roi if roi is not None and roi_selects(prepared.probability, roi, (width, height)) else None
    cutout = session.finish(prepared, box=box)
    timings = dict(cutout.timings)
    t = time.perf_counter()
    alpha = cutout.alpha if roi is None else restrict_to_box(cutout.alpha, roi)
    if not params.semitransparency:
        alpha = without_semitransparency(alpha, edge=max(2.0, 0.004 * max(width, height)))
    subject = subject_box(alpha)
    if subject is None:
        raise RemoveBgError("unknown_foreground", "Could not identify foreground in image.",
                            "no subject was found" + (" inside the roi" if roi else "") + "; nothing would be left of the image")
    if params.add_shadow:
        colour_f, coverage = shadow_layer(cutout.foreground, alpha, Shadow())
        colour, covered = _to_uint8(colour_f), subject_box(coverage) or subject
        del colour_f
    else:
        colour, coverage, covered = cutout.foreground, alpha, subject
    plan = layout(params, (width, height), subject, covered)
    colour, coverage = place(colour, coverage, plan.canvas, plan.scale, plan.offset)
    if params.channels == "alpha":
        pixels = _to_uint8(coverage * 255.0)
    else:
        pixels = over(colour, coverage, _backdrop(params, bg_image, plan.canvas, max_pixels))
    timings["layout"] = time.perf_counter() - t
    t = time.perf_counter()
    data, fmt = _encode(pixels, params.image_format)
    timings["encode"] = time.perf_counter() - t
    left, top, right, bottom = plan.box(subject)
    warnings = list(dict.fromkeys(decoded.warnings + cutout.warnings))
    return RemoveBgResult(data, fmt, plan.canvas[0], plan.canvas[1], (top, left, right - left, bottom - top),
                          (width, height), warnings, timings, started)
