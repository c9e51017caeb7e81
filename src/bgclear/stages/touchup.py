"""Stage 2c — touch-up: the user's keep / remove points (and box) decide which regions are in.

The promptable segmenter (MobileSAM) answers "which object"; it does not draw
good edges (its mask is 256 x 256). So its answers change only which regions
are in, and the matting stage still draws every edge at full resolution.

From the automatic cutout (the product's case), each click adds or takes away
one object, chosen among the decoder's answers to that one point (a part, a
larger part, the whole object):

- a keep click adds the answer the decoder rates best (usually the whole object:
  "this belongs");
- a remove click takes away the largest answer that is not the subject: one that
  holds no keep click, takes at most half of the current cutout and lies mostly
  inside it. The decoder's whole-object answer for a click on a wrongly kept part
  is often the subject it is attached to, and removing that undoes the cutout
  (grabcut_dev: IoU .90 -> .21 in one click); taking always the smallest answer
  instead left most of a wrongly kept region in place (NoC@90 1.73, against 0.70
  with this rule: docs/BENCHMARKS.md);
- when every answer is the subject (a fence fused with the horse above it), the
  decoder is asked instead for the cutout without the clicked part: the keep clicks,
  this click as a negative point, the current probability as its mask prior. Only
  the part it drops that holds the click is removed (:func:`carve`): it redraws the
  whole mask, and its changes away from the click were not asked for. Where that
  answer fails its checks, the smallest answer is removed, as before;
- only where the answer is sure (at least :data:`CONFIDENT` from 0.5) and the
  nearest click is of the same kind; elsewhere the automatic probability stays.

From nothing (``auto=None``: the protocol's start for published comparisons) the
clicks are answered as a chain, as SAM's own evaluation does: the first click takes
the largest of the decoder's answers rated within :data:`FIRST_CLICK_SLACK` of its
best (a click from scratch means the whole subject more often than a part), each
later answer gets all clicks so far plus the previous answer as the decoder's mask
prior, and is used only if it honours the clicks at least as well as the answer
without the prior.

Runs at the working size (long side ~1024), so a click costs the same at 24 MP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..promptable import Embedding, Prediction, PromptableSegmenter, Prompts

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


#: A keep or remove point, ordered as the user made them: ((x, y), keep).
Click = tuple[Point, bool]
#: ``remember(name, compute)``: ``compute()``, kept under ``name`` with the image while the session
#: caches it (each further click then costs one decoder pass, not one per click so far).
Remember = Callable[[str, Callable[[], Any]], Any]
#: From nothing, the first click takes the largest answer rated within this of the decoder's best.
FIRST_CLICK_SLACK = 0.05


def _compute(name: str, compute: Callable[[], Any]) -> Any:
    return compute()


def _pixel(point: Point, size: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """(row, col) in a map of ``shape`` (h, w) covering a source of ``size`` (W, H)."""
    h, w = shape
    return min(h - 1, int(point[1] * h / size[1])), min(w - 1, int(point[0] * w / size[0]))


def keep_object(answers: Sequence[Prediction]) -> np.ndarray:
    """What a keep click adds: the decoder's best-rated answer, float32 (h, w) at ``Embedding.resized_size``."""
    return max(answers, key=lambda a: a.score).prob


def is_subject(answer: np.ndarray, current: np.ndarray, kept: Sequence[tuple[int, int]] = ()) -> bool:
    """Whether removing ``answer`` would undo the cutout: it holds a keep click, or its sure part takes
    more than half of ``current >= 0.5``. Arrays float32 (h, w); ``kept``: (row, col) of keep clicks."""
    cutout = current >= 0.5
    taken = int(((answer >= 0.5 + CONFIDENT) & cutout).sum())
    return any(answer[k] >= 0.5 for k in kept) or taken > 0.5 * max(1, int(cutout.sum()))


def drop_object(answers: Sequence[np.ndarray], at: tuple[int, int], current: np.ndarray,
                kept: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """What a remove click takes away (see the module docstring), float32 (h, w).

    ``answers``: the decoder's answers to the click, float32 (h, w) in 0..1 at ``current``'s size;
    ``at``: the click's (row, col); ``current``: float32 (h, w), the probability before this
    click; ``kept``: (row, col) of every keep click.
    """
    holding = [a for a in answers if a[at] >= 0.5] or list(answers)
    cutout = current >= 0.5

    def not_subject(answer: np.ndarray) -> bool:
        sure = answer >= 0.5 + CONFIDENT
        return not is_subject(answer, current, kept) and int((sure & cutout).sum()) >= 0.5 * int(sure.sum())

    area = lambda a: int((a >= 0.5).sum())  # noqa: E731
    allowed = [a for a in holding if not_subject(a)]
    return max(allowed, key=area) if allowed else min(holding, key=area)


def ordered_clicks(keep: Sequence[Point], drop: Sequence[Point], order: Sequence[bool] | None = None) -> list[Click]:
    """The clicks in the order they were made: ``order`` lists each click's kind (True: keep) and takes
    the points from ``keep`` and ``drop`` in turn; without it, the keep points come first."""
    if order is None:
        order = [True] * len(keep) + [False] * len(drop)
    if sum(order) != len(keep) or len(order) - sum(order) != len(drop):
        raise ValueError(f"order names {sum(order)} keep and {len(order) - sum(order)} remove clicks; "
                         f"there are {len(keep)} and {len(drop)}")
    kinds = {True: iter(keep), False: iter(drop)}
    return [(tuple(next(kinds[bool(k)])), bool(k)) for k in order]


def honoured(prob: np.ndarray, size: tuple[int, int], clicks: Sequence[Click]) -> int:
    """How many clicks ``prob`` (float32 (h, w) over a source of ``size``) agrees with."""
    return sum((prob[_pixel(p, size, prob.shape)] >= 0.5) == k for p, k in clicks)


def _answer_name(kind: str, box: Box | None, clicks: Sequence[Click]) -> str:
    """The name an answer that depends on ``box`` and ``clicks`` is remembered under with the image."""
    box_name = "" if box is None else f" box {tuple(float(v) for v in box)!r}"
    return kind + box_name + "".join(f" {'k' if k else 'd'}{p[0]!r},{p[1]!r}" for p, k in clicks)


def from_scratch(segmenter: PromptableSegmenter, embedding: Embedding, clicks: Sequence[Click],
                 box: Box | None = None, remember: Remember = _compute) -> np.ndarray:
    """Foreground probability from the prompts alone, float32 (h, w) at ``embedding.resized_size``.

    Each answer in the chain is remembered under its clicks, so a further click costs two decoder passes.
    """
    size = embedding.original_size

    def step(n: int, previous: np.ndarray | None) -> np.ndarray:
        done = list(clicks[:n])
        prompts = Prompts(keep=tuple(p for p, k in done if k), drop=tuple(p for p, k in done if not k), box=box)
        if previous is None:
            if n == 1 and box is None:
                answers = segmenter.alternatives(embedding, done[0][0])
                best = max(a.score for a in answers)
                return max((a for a in answers if a.score >= best - FIRST_CLICK_SLACK), key=lambda a: int((a.prob >= 0.5).sum())).prob
            return segmenter.predict(embedding, prompts)
        plain = segmenter.predict(embedding, prompts)
        guided = segmenter.predict(embedding, Prompts(keep=prompts.keep, drop=prompts.drop, box=box, mask=previous))
        return guided if honoured(guided, size, done) >= honoured(plain, size, done) else plain

    prob = None
    if not clicks:
        return segmenter.predict(embedding, Prompts(box=box))
    for n in range(1, len(clicks) + 1):
        prob = remember(_answer_name("scratch", box, clicks[:n]), lambda n=n, previous=prob: step(n, previous))
    return prob


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
    order: Sequence[bool] | None = None,
    remember: Remember = _compute,
) -> np.ndarray:
    """Foreground probability after the user's prompts.

    ``auto``: float32 (h, w) in 0..1, the automatic (settled) probability over the
    whole source at the working size, or ``None`` to start from nothing (the
    protocol's "from scratch" start). Points and ``box`` in source pixels of
    ``embedding.original_size``; ``order``: the kinds of the clicks in the order they
    were made (:func:`ordered_clicks`; only the start from nothing depends on it).
    ``remember``: the session's per-image memory for decoder answers. Returns float32
    (h, w) in 0..1 at ``auto``'s size (at ``embedding.resized_size`` when ``auto``
    is ``None``). Raises :class:`~bgclear.errors.InputError` for prompts that do not fit.
    """
    size = embedding.original_size
    if auto is None:
        return from_scratch(segmenter, embedding, ordered_clicks(keep, drop, order), box, remember)
    work = (auto.shape[1], auto.shape[0])
    prob = auto
    if box is not None:
        boxed = segmenter.predict(embedding, Prompts(box=box, mask=auto))
        prob = fuse(prob, cv2.resize(boxed, work, interpolation=cv2.INTER_LINEAR)) * box_mask(auto.shape, size, box)
    if not (keep or drop):
        return prob.astype(np.float32)

    def answers(point: Point) -> list[Prediction]:
        return remember(f"answers {float(point[0])!r} {float(point[1])!r}", lambda: segmenter.alternatives(embedding, point))

    keep_side = nearest_click_wins(auto.shape, size, keep, drop)
    for point in keep:
        obj = cv2.resize(keep_object(answers(point)), work, interpolation=cv2.INTER_LINEAR)
        prob = np.where((obj >= 0.5 + CONFIDENT) & keep_side, np.maximum(prob, obj), prob)
    kept = [_pixel(p, size, auto.shape) for p in keep]
    for i, point in enumerate(drop):
        at = _pixel(point, size, auto.shape)
        options = [cv2.resize(a.prob, work, interpolation=cv2.INTER_LINEAR) for a in answers(point)]
        obj = drop_object(options, at, prob, kept)
        if is_subject(obj, prob, kept):
            name = _answer_name("carve", box, [(p, True) for p in keep] + [(p, False) for p in drop[: i + 1]])
            rest = remember(name, lambda prior=prob, point=point: segmenter.predict(
                embedding, Prompts(keep=tuple(keep), drop=(point,), mask=prior)))
            carved = carve(cv2.resize(rest, work, interpolation=cv2.INTER_LINEAR), at, prob, kept)
            obj = obj if carved is None else carved
        prob = np.where((obj >= 0.5 + CONFIDENT) & ~keep_side, np.minimum(prob, 1.0 - obj), prob)
    return prob.astype(np.float32)




def carve(rest: np.ndarray, at: tuple[int, int], current: np.ndarray,
          kept: Sequence[tuple[int, int]] = ()) -> np.ndarray | None:
    """What a remove click takes away when every answer to the click alone is the subject.

    ``rest``: float32 (h, w), the decoder's answer to the keep clicks, this click as a negative
    point and ``current`` as the mask prior: the cutout without the clicked part. Returns float32
    (h, w), 1 on the part of the cutout ``rest`` is sure to drop that holds the click (the
    decoder redraws the whole mask, and its changes away from the click are not what was asked),
    or ``None`` when ``rest`` keeps the click, drops half the cutout or more, or drops a keep click.
    """
    cutout = current >= 0.5
    if rest[at] >= 0.5 or int(((rest >= 0.5) & cutout).sum()) < 0.5 * int(cutout.sum()):
        return None
    dropped = (cutout & (rest < 0.5 - CONFIDENT)).astype(np.uint8)
    n, labels = cv2.connectedComponents(dropped, connectivity=8)
    if n <= 1:
        return None
    label = labels[at]
    if label == 0:  # the click sits in a seam: the dropped part nearest to it
        ys, xs = np.nonzero(labels)
        j = int(np.argmin((ys - at[0]) ** 2 + (xs - at[1]) ** 2))
        label = labels[ys[j], xs[j]]
    part = (labels == label).astype(np.float32)
    return None if any(part[k] > 0 for k in kept) else part


def second_opinion(segmenter: PromptableSegmenter, embedding: Embedding, auto: np.ndarray) -> np.ndarray:
    """The automatic probability checked by the promptable segmenter, with no click.

    ``auto``: float32 (h, w) in 0..1 over the whole source (working size). The decoder gets the
    box around ``auto >= 0.5`` and ``auto`` itself as its mask prior; where it is sure and
    disagrees, it decides (:func:`fuse`), elsewhere ``auto`` stays. Returns float32 (h, w).
    Measured on every dev set (docs/BENCHMARKS.md): SAD down on all four, IoU up on three and
    flat on COCO-MVal, Grad up on the alphamatting photos. Deciding only regions wider than the
    trimap's band was tried and lost on most sets.
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
