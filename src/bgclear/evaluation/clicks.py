"""The click protocol of interactive segmentation: a simulated user corrects a mask.

As in Xu et al. 2016 and as used by RITM and SAM: each click goes to the interior
point (farthest from the region's boundary, the image edge counting as boundary)
of the largest error region; a keep-click on a missed region, a remove-click on
a wrongly kept one; up to ``max_clicks``. Pixels marked ``ignore`` (GrabCut's
unlabelled 128 band) count for neither side.

Plain functions over boolean (H, W) masks; :mod:`bgclear.evaluation.interactive`
drives the product's pipeline with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

Click = tuple[float, float, bool]  # (x, y, keep) in pixel coordinates


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of boolean (H, W) masks over the pixels not in ``ignore`` (1.0 when both are empty)."""
    if ignore is not None:
        pred, gt = pred & ~ignore, gt & ~ignore
    union = int((pred | gt).sum())
    return float((pred & gt).sum() / union) if union else 1.0


def _largest_region(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest 8-connected region of a boolean mask and its area (0 when empty)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask), 0
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best, int(stats[best, cv2.CC_STAT_AREA])


def _interior_point(region: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel of ``region`` farthest from its boundary; the image edge is boundary too."""
    padded = np.pad(region.astype(np.uint8), 1)  # zeros around: the image edge becomes boundary
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def next_click(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> Click | None:
    """The simulated user's next click for boolean (H, W) ``pred`` against ``gt``; ``None`` when nothing is wrong."""
    care = ~ignore if ignore is not None else np.ones_like(gt)
    missed, _ = _largest_region(gt & ~pred & care)
    wrong, _ = _largest_region(pred & ~gt & care)
    missed_area, wrong_area = int(missed.sum()), int(wrong.sum())
    if missed_area == 0 and wrong_area == 0:
        return None
    keep = missed_area >= wrong_area
    x, y = _interior_point(missed if keep else wrong)
    return float(x), float(y), keep


@dataclass
class ClickRun:
    """One image's run: IoU before any click (index 0) and after each click."""

    ious: list[float]
    clicks: list[Click]

    def clicks_to(self, target: float, max_clicks: int) -> int:
        """Clicks needed to reach ``target`` IoU (0 when the start already does; ``max_clicks`` when never)."""
        for n, value in enumerate(self.ious):
            if value >= target:
                return n
        return max_clicks

    def harmful_clicks(self, drop: float = 0.05) -> int:
        """Clicks after which IoU fell by more than ``drop``."""
        return sum(1 for a, b in zip(self.ious, self.ious[1:]) if a - b > drop)


def simulate(
    gt: np.ndarray,
    answer: Callable[[list[Click]], np.ndarray],
    start: np.ndarray,
    ignore: np.ndarray | None = None,
    max_clicks: int = 20,
    stop_at: float = 1.01,
) -> ClickRun:
    """Run the protocol on one image.

    ``gt``, ``start``, ``ignore``: boolean (H, W). ``answer(clicks)`` returns the
    product's float alpha (H, W) in 0..1 after all ``clicks`` so far (each
    ``(x, y, keep)``); it is binarised at 0.5. Stops early once IoU reaches
    ``stop_at`` (default: never, so later harmful clicks are seen too).
    """
    pred = start.astype(bool)
    ious = [mask_iou(pred, gt, ignore)]
    clicks: list[Click] = []
    while len(clicks) < max_clicks and ious[-1] < stop_at:
        click = next_click(pred, gt, ignore)
        if click is None:
            break
        clicks.append(click)
        pred = answer(list(clicks)) >= 0.5
        ious.append(mask_iou(pred, gt, ignore))
    while len(ious) <= max_clicks:  # a perfect mask stays perfect
        ious.append(ious[-1])
    return ClickRun(ious=ious, clicks=clicks)


def summarise_runs(runs: list[ClickRun], max_clicks: int = 20) -> dict[str, float]:
    """NoC@85/90 (mean clicks to reach that IoU, ``max_clicks`` when never), mean IoU after 0/1/3/5 clicks,
    images that never reach 90 %, and clicks that lowered IoU by more than 0.05."""
    if not runs:
        return {"n": 0}
    out: dict[str, float] = {"n": len(runs)}
    for target in (0.85, 0.90):
        out[f"noc{int(target * 100)}"] = float(np.mean([r.clicks_to(target, max_clicks) for r in runs]))
    for k in (0, 1, 3, 5):
        out[f"iou@{k}"] = float(np.mean([r.ious[min(k, len(r.ious) - 1)] for r in runs]))
    out["never90"] = sum(1 for r in runs if max(r.ious) < 0.90)
    out["harmful"] = sum(r.harmful_clicks() for r in runs)
    return out
