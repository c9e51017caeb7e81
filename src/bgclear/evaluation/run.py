"""``bgclear eval``: run the pipeline over images with ground-truth alpha and score it.

Layout of a dataset folder: ``image/NAME.png``, ``alpha/NAME.png`` (0..255) and,
optionally, ``trimap/NAME.png`` (0/128/255) for the unknown-region metrics and
for the ``given-trimap`` mode, which scores a refiner on its own.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..backends import make_refiner, make_segmenter
from ..engines import EngineOptions
from ..stages.segment import upsample_probability
from ..pipeline import Session, matte_from_probability, matte_full_resolution
from ..stages.trimap import UNKNOWN
from .metrics import all_metrics

DEFAULT_EVAL_DIR_ENV = "BGCLEAR_EVAL_DIR"
METRIC_COLUMNS = ["sad", "mse", "grad", "conn", "iou", "sad_unknown", "mse_unknown", "grad_unknown", "conn_unknown"]


def default_eval_dir() -> Path:
    """``$BGCLEAR_EVAL_DIR``, else ``../shared/eval`` next to the current checkout."""
    env = os.environ.get(DEFAULT_EVAL_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "eval"


@dataclass
class Sample:
    dataset: str
    name: str
    image: Path
    alpha: Path
    trimap: Path | None


def find_samples(root: Path, limit: int | None = None) -> list[Sample]:
    """Every (image, alpha[, trimap]) triple under ``root`` (a dataset folder or a folder of them)."""
    root = Path(root)
    datasets = [root] if (root / "image").is_dir() else sorted(p for p in root.iterdir() if (p / "image").is_dir())
    samples: list[Sample] = []
    for ds in datasets:
        for img in sorted((ds / "image").iterdir()):
            alpha = ds / "alpha" / (img.stem + ".png")
            if not alpha.exists():
                continue
            tri = ds / "trimap" / (img.stem + ".png")
            samples.append(Sample(ds.name, img.stem, img, alpha, tri if tri.exists() else None))
            if limit and len([s for s in samples if s.dataset == ds.name]) >= limit:
                break
    return samples


def _load_gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def evaluate(
    root: Path,
    segmenter: str = "isnet",
    refiners: tuple[str, ...] = ("none", "guided"),
    given_trimap: bool = False,
    limit: int | None = None,
    progress=None,
    settle: bool = True,
    engine: str = "auto",
    precision: str = "auto",
    second_opinion: bool = False,
) -> dict:
    """Score each refiner (``none`` = raw segmentation) on every sample.

    With ``given_trimap`` the dataset's trimap replaces ours and the coarse
    probability is its unknown band filled with 0.5: this isolates the matting stage.
    ``engine``/``precision`` choose the inference runtime; when either is not
    ``auto`` the method names say which (e.g. ``isnet@openvino-bf16+guided``).
    ``second_opinion``: the refined rows take the product's opt-in second opinion (through a
    :class:`~bgclear.pipeline.Session` with it on; the raw row stays the segmenter's own output).
    Returns ``{"rows": [...], "summary": {method: {dataset|overall: {metric: mean}}}}``.
    """
    samples = find_samples(root, limit)
    session = None
    if second_opinion and not given_trimap:
        session = Session(segmenter=segmenter, engine=engine, precision=precision, settle=settle, second_opinion=True)
        seg = session.segmenter
    else:
        seg = None if given_trimap else make_segmenter(segmenter, options=EngineOptions(engine=engine, precision=precision))
    seg_label = segmenter
    if seg is not None and (engine, precision) != ("auto", "auto"):
        seg_label = f"{segmenter}@{seg.engine.name}-{seg.engine.precision}"
    refs = {name: make_refiner(name) for name in refiners}
    rows = []
    for sample in samples:
        rgb = np.asarray(Image.open(sample.image).convert("RGB"))
        gt = _load_gray(sample.alpha).astype(np.float32) / 255.0
        gt_tri = _load_gray(sample.trimap) if sample.trimap else None
        unknown = (gt_tri == UNKNOWN) if gt_tri is not None else None
        h, w = gt.shape
        if given_trimap:
            if gt_tri is None:
                continue
            trimap = gt_tri
            coarse = np.where(gt_tri == 255, 1.0, np.where(gt_tri == 0, 0.0, 0.5)).astype(np.float32)
            seg_time = 0.0
        else:
            t = time.perf_counter()
            if session is not None:  # kept with the image while its refiners are scored, then dropped
                session.cache.clear()
                prepared = session.prepare(rgb, reuse=True)
                prob = prepared.probability
            else:
                prob = seg.predict(rgb)
            seg_time = time.perf_counter() - t
        for name, ref in refs.items():
            t = time.perf_counter()
            if given_trimap:
                alpha = ref.refine(rgb, trimap, coarse)
            elif name == "none":
                alpha = upsample_probability(prob, (w, h))  # the raw segmentation output
            elif session is not None:
                alpha, _, _ = matte_full_resolution(rgb, session.probability(prepared), ref)
            else:
                alpha, _, _ = matte_from_probability(rgb, prob, ref, settle=settle)
            seconds = time.perf_counter() - t
            metrics = all_metrics(np.clip(alpha, 0, 1), gt, unknown)
            method = f"{'given-trimap' if given_trimap else seg_label}+{name}"
            if name != "none" and not given_trimap and not settle:
                method += " (no settle)"
            if name != "none" and session is not None:
                method += " (second opinion)"
            rows.append({"dataset": sample.dataset, "name": sample.name, "method": method,
                         "seconds_refine": seconds, "seconds_segment": seg_time, **metrics})
        if progress:
            progress(sample)
    return {"rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        groups = {ds: [r for r in mine if r["dataset"] == ds] for ds in dict.fromkeys(r["dataset"] for r in mine)}
        groups["overall"] = mine
        out[method] = {
            g: {c: float(np.mean([r[c] for r in rs if c in r])) for c in METRIC_COLUMNS + ["seconds_refine"] if any(c in r for r in rs)}
            | {"n": len(rs)}
            for g, rs in groups.items()
        }
    return out


def format_table(summary: dict) -> str:
    """Markdown table: one row per (method, dataset); SAD/Grad/Conn /1000, MSE x1e3."""
    cols = [("sad", 1), ("mse", 1e3), ("grad", 1), ("conn", 1), ("iou", 1),
            ("sad_unknown", 1), ("mse_unknown", 1e3), ("grad_unknown", 1), ("conn_unknown", 1)]
    head = "| method | dataset | n | SAD | MSE×1e3 | Grad | Conn | IoU | SAD-u | MSE-u×1e3 | Grad-u | Conn-u | refine s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for method, groups in summary.items():
        for ds, m in groups.items():
            vals = [f"{m[c] * k:.3f}" if c == "iou" else (f"{m[c] * k:.2f}" if c in m else "–") for c, k in cols]
            lines.append(f"| {method} | {ds} | {m['n']} | " + " | ".join(vals) + f" | {m.get('seconds_refine', 0):.2f} |")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
