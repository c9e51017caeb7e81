"""Stage 2c — touch-up: the user's keep / remove points (and box) decide which regions are in.

The promptable segmenter (MobileSAM) answers "which object"; it does not draw
good edges (its mask is 256 x 256). So its answer is fused with the automatic
segmentation, and the matting stage still draws every edge at full resolution:

- prompts start from the automatic cutout: its box (grown to take in any keep
  point outside it, with a margin, or the user's own box) and its probability as
  the decoder's mask prior, plus every click so far (the decoder is stateless:
  each answer is computed from all clicks, never from the previous answer);
- where the two agree on a pixel's side of 0.5, the automatic probability stays
  (its soft hair and fur values); where they disagree, the prompted answer wins
  if it is sure (else the automatic one stays);
- every answer is checked against the clicks: a keep point must end up in, a
  remove point out. When the answer with the prior breaks a click, the answer
  without it is tried, and the one honouring more clicks is used.

Runs at the working size (long side ~1024), so a click costs the same at 24 MP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from ..errors import InputError
from ..promptable import Embedding, PromptableSegmenter, Prompts

Point = tuple[float, float]
Box = tuple[float, float, float, float]

def check_prompts(
    keep: Sequence[Point], drop: Sequence[Point], box: Box | None, size: tuple[int, int] | None = None
) -> None:
    """Raise :class:`InputError` (``invalid_option``) naming what is wrong with the prompts: not pairs
    of finite numbers, too many points, a box with no area; with ``size`` = (W, H) also points
    outside the image and a box that misses it."""
    prompts = Prompts(keep=tuple(keep), drop=tuple(drop), box=box)
    if size is None:
        return
    width, height = size
    for name, points in (("keep", prompts.keep), ("drop", prompts.drop)):
        for i, (x, y) in enumerate(points):
            if not (0 <= x < width and 0 <= y < height):
                raise InputError("invalid_option", f"{name} point {i + 1} ({x:g}, {y:g}) is outside the "
                                 f"{width}x{height} image (0 <= x < {width}, 0 <= y < {height})")
    if prompts.box is not None:
        left, top, right, bottom = prompts.box
        if not (max(left, 0) < min(right, width) and max(top, 0) < min(bottom, height)):
            raise InputError("invalid_option", f"box {prompts.box} has no area inside the {width}x{height} image")


def subject_box(prob: np.ndarray, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """(left, top, right, bottom) in source pixels of ``prob >= 0.5``; ``prob`` float32 (h, w) covers
    the whole source of ``size`` = (W, H). ``None`` when nothing is foreground."""
    rows = np.flatnonzero((prob >= 0.5).any(axis=1))
    cols = np.flatnonzero((prob >= 0.5).any(axis=0))
    if rows.size == 0:
        return None
    sx, sy = size[0] / prob.shape[1], size[1] / prob.shape[0]
    return (cols[0] * sx, rows[0] * sy, (cols[-1] + 1) * sx, (rows[-1] + 1) * sy)


#: The prompted answer overrules the automatic one only where it is at least this far from 0.5.
CONFIDENT = 0.25


def fuse(auto: np.ndarray, prompted: np.ndarray, confident: float = CONFIDENT) -> np.ndarray:
    """float32 (h, w): ``prompted`` where it puts a pixel on the other side of 0.5 than ``auto`` and is
    sure of it (at least ``confident`` from 0.5), else ``auto``. An unsure prompted answer (MobileSAM
    answers a whole-image box with ~0.46 everywhere) must not turn a solid subject grey."""
    overrule = ((auto >= 0.5) != (prompted >= 0.5)) & (np.abs(prompted - 0.5) >= confident)
    return np.where(overrule, prompted, auto).astype(np.float32)


def point_object(segmenter: PromptableSegmenter, embedding: Embedding, point: Point, keep: bool) -> np.ndarray:
    """float32 (h, w) probability, at ``embedding.resized_size``, of what a click at ``point`` points at.

    A keep click takes the decoder's best-scored answer (usually the whole object: adding
    all of it is what "this belongs" means). A remove click takes the smallest answer that
    contains the point: the decoder's best guess for a click on a wrongly kept part is often
    the whole subject it is attached to, and removing that undoes the cutout (seen on
    grabcut_dev: IoU .90 -> .21 in one click).
    """
    options = segmenter.alternatives(embedding, point)
    if keep:
        return max(options, key=lambda o: o.score).prob
    w, h = embedding.resized_size
    sx, sy = w / embedding.original_size[0], h / embedding.original_size[1]
    px, py = min(w - 1, int(point[0] * sx)), min(h - 1, int(point[1] * sy))
    inside = [o for o in options if o.prob[py, px] >= 0.5] or options
    return min(inside, key=lambda o: int((o.prob >= 0.5).sum())).prob


def nearest_click_wins(shape: tuple[int, int], size: tuple[int, int], keep: Sequence[Point], drop: Sequence[Point]) -> np.ndarray:
    """bool (h, w): True where the nearest click (in source pixels) is a keep click."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs *= size[0] / w
    ys *= size[1] / h

    def nearest(points):
        d = np.full(shape, np.inf, np.float32)
        for x, y in points:
            np.minimum(d, (xs - x) ** 2 + (ys - y) ** 2, out=d)
        return d

    return nearest(keep) <= nearest(drop)


def touch_up(
    segmenter: PromptableSegmenter,
    embedding: Embedding,
    auto: np.ndarray | None,
    keep: Sequence[Point] = (),
    drop: Sequence[Point] = (),
    box: tuple[float, float, float, float] | None = None,
    objects: Callable[[Point, bool], np.ndarray] | None = None,
) -> np.ndarray:
    """Foreground probability after the user's prompts.

    ``auto``: float32 (h, w) in 0..1, the automatic (settled) probability over the
    whole source at the working size, or ``None`` to start from nothing (the
    protocol's "from scratch" start). Points and ``box`` in source pixels of
    ``embedding.original_size``. ``objects(point, keep)``: what a click points at
    (:func:`point_object`; the session passes a cached version). Returns float32
    (h, w) in 0..1 at ``auto``'s size (at ``embedding.resized_size`` when ``auto``
    is ``None``). Raises :class:`~bgclear.errors.InputError` for prompts that do not fit.
    """
    size = embedding.original_size
    if auto is None:
        return segmenter.predict(embedding, Prompts(keep=tuple(keep), drop=tuple(drop), box=box))
    work = (auto.shape[1], auto.shape[0])
    objects = objects or (lambda point, is_keep: point_object(segmenter, embedding, point, is_keep))
    prob = auto
    if box is not None:
        boxed = segmenter.predict(embedding, Prompts(box=box, mask=auto))
        prob = fuse(prob, cv2.resize(boxed, work, interpolation=cv2.INTER_LINEAR)) * box_mask(auto.shape, size, box)
    if not (keep or drop):
        return prob.astype(np.float32)
    keep_side = nearest_click_wins(auto.shape, size, keep, drop)
    for points, side, add in ((keep, keep_side, True), (drop, ~keep_side, False)):
        for point in points:
            obj = cv2.resize(objects(point, add), work, interpolation=cv2.INTER_LINEAR)
            sure = (obj >= 0.5 + CONFIDENT) & side
            prob = np.where(sure, np.maximum(prob, obj) if add else np.minimum(prob, 1.0 - obj), prob)
    return prob.astype(np.float32)


def second_opinion(segmenter: PromptableSegmenter, embedding: Embedding, auto: np.ndarray) -> np.ndarray:
    """The automatic probability checked by the promptable segmenter, with no click.

    ``auto``: float32 (h, w) in 0..1 over the whole source (working size). The decoder gets the
    box around ``auto >= 0.5`` and ``auto`` itself as its mask prior; where it is sure and
    disagrees, it decides (:func:`fuse`), elsewhere ``auto`` stays. Returns float32 (h, w).
    Measured on the dev photos (docs/BENCHMARKS.md): IoU up on both sets, SAD down, Grad up.
    """
    box = subject_box(auto, embedding.original_size)
    if box is None:
        return auto
    prob = segmenter.predict(embedding, Prompts(box=box, mask=auto))
    return fuse(auto, cv2.resize(prob, (auto.shape[1], auto.shape[0]), interpolation=cv2.INTER_LINEAR))


def box_mask(shape: tuple[int, int], size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """float32 (h, w): 1 inside ``box`` (source pixels of ``size``), 0 outside."""
    h, w = shape
    left, top, right, bottom = box
    out = np.zeros(shape, np.float32)
    sx, sy = w / size[0], h / size[1]
    out[max(0, int(top * sy)): max(0, int(np.ceil(bottom * sy))), max(0, int(left * sx)): max(0, int(np.ceil(right * sx)))] = 1.0
    return out
