"""``bgclear eval --clicks N``: the click protocol run through the product's own pipeline.

Each image is prepared once (automatic segmentation and the promptable
segmenter's embedding, cached by the session); each click is answered by the
same code the library, CLI and server use (:meth:`bgclear.pipeline.Session.probability`
then matting at full resolution), so what is scored is what a user gets.

Ground truth: an alpha matte or a mask binarised at 0.5; in mask datasets (every
value 0, 128 or 255) the value 128 marks an unlabelled band (GrabCut) that is
ignored. Two starts: ``auto`` (our automatic cutout, counted as 0 clicks: the
product's case) and ``empty`` (nothing selected: comparable with published numbers).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from ..pipeline import Session, matte_full_resolution
from .clicks import ClickRun, simulate, summarise_runs
from .run import Sample, find_samples

STARTS = ("auto", "empty")


def load_mask(path) -> tuple[np.ndarray, np.ndarray | None]:
    """(ground truth bool (H, W), ignore bool (H, W) or None) from an alpha or mask PNG."""
    values = np.asarray(Image.open(path).convert("L"))
    ignore = None
    if np.isin(values, (0, 128, 255)).all() and (values == 128).any():
        ignore = values == 128
    return values > 127, ignore


def run_image(session: Session, sample: Sample, start: str, max_clicks: int, stop_at: float) -> tuple[ClickRun, float]:
    """One image under the protocol; returns its run and the mean seconds per click."""
    gt, ignore = load_mask(sample.alpha)
    prepared = session.prepare(sample.image, reuse=True)
    rgb = prepared.decoded.rgb
    if rgb.shape[:2] != gt.shape:
        raise ValueError(f"{sample.dataset}/{sample.name}: image {rgb.shape[:2]} and mask {gt.shape} differ")
    seconds: list[float] = []

    def answer(clicks) -> np.ndarray:
        t = time.perf_counter()
        keep = [(x, y) for x, y, k in clicks if k]
        drop = [(x, y) for x, y, k in clicks if not k]
        work = session.probability(prepared, keep, drop, start=start, order=[k for _, _, k in clicks])
        alpha, _, _ = matte_full_resolution(rgb, work, session.refiner)
        seconds.append(time.perf_counter() - t)
        return alpha

    if start == "auto":
        alpha, _, _ = matte_full_resolution(rgb, session.probability(prepared), session.refiner)
        first = alpha >= 0.5
    else:
        first = np.zeros_like(gt)
    run = simulate(gt, answer, first, ignore=ignore, max_clicks=max_clicks, stop_at=stop_at)
    return run, float(np.mean(seconds)) if seconds else 0.0


def evaluate_clicks(
    root, session: Session, max_clicks: int = 20, starts: tuple[str, ...] = STARTS, limit: int | None = None,
    stop_at: float = 0.95, progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the protocol on every dataset under ``root``.

    Returns ``{"rows": [per image and start], "summary": {start: {dataset|overall: metrics}}}`` with
    the metrics of :func:`~bgclear.evaluation.clicks.summarise_runs` plus seconds per click.
    ``stop_at``: a run stops once IoU reaches it (a user stops when satisfied), so clicks that
    would lower IoU after that are not counted.
    """
    rows: list[dict] = []
    runs: dict[tuple[str, str], list[ClickRun]] = {}
    for sample in find_samples(root, limit):
        for start in starts:
            run, per_click = run_image(session, sample, start, max_clicks, stop_at)
            runs.setdefault((start, sample.dataset), []).append(run)
            rows.append({"dataset": sample.dataset, "name": sample.name, "start": start, "ious": run.ious,
                         "clicks": [list(c) for c in run.clicks], "seconds_per_click": per_click})
            if progress:
                progress(f"{start} {sample.dataset}/{sample.name}: IoU {run.ious[0]:.3f} -> {max(run.ious):.3f} "
                         f"in {run.clicks_to(0.9, max_clicks)} clicks to 90 %")
        session.cache.clear()  # one photo's embeddings are not needed for the next
    summary: dict = {}
    for start in starts:
        per_ds = {ds: summarise_runs(r, max_clicks) for (s, ds), r in runs.items() if s == start}
        per_ds["overall"] = summarise_runs([x for (s, _), r in runs.items() if s == start for x in r], max_clicks)
        secs = [row["seconds_per_click"] for row in rows if row["start"] == start and row["seconds_per_click"]]
        per_ds["overall"]["seconds_per_click"] = float(np.mean(secs)) if secs else 0.0
        summary[start] = per_ds
    return {"rows": rows, "summary": summary}


def format_clicks_table(summary: dict) -> str:
    """Markdown: one row per (start, dataset)."""
    head = "| start | dataset | n | NoC@85 | NoC@90 | IoU@0 | IoU@1 | IoU@3 | IoU@5 | never 90 % | clicks that lowered IoU > .05 |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for start, groups in summary.items():
        for ds, m in groups.items():
            if not m.get("n"):
                continue
            lines.append(f"| {start} | {ds} | {m['n']} | {m['noc85']:.2f} | {m['noc90']:.2f} | {m['iou@0']:.3f} | "
                         f"{m['iou@1']:.3f} | {m['iou@3']:.3f} | {m['iou@5']:.3f} | {m['never90']} | {m['harmful']} |")
    return "\n".join(lines)
