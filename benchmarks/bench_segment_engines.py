"""Segmentation speed per inference engine and precision, as ratios measured in one run.

    python benchmarks/bench_segment_engines.py --model isnet --rounds 7 --threads 2

Every configuration is loaded once in this process, then the rounds interleave them
(one inference each per round), so a machine whose load changes during the run
slows all of them alike; the table gives each one's median and its speed relative
to onnxruntime f32. The input is a real photo resized by the model's own
preprocessing. Also reports each load time (OpenVINO's from its compile cache once
a first run has filled it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="isnet")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", nargs="+", default=["onnxruntime:f32", "openvino:f32", "openvino:bf16"])
    ap.add_argument("--source", type=Path, default=REPO / "examples" / "cat.png")
    args = ap.parse_args()

    from bgclear.engines import EngineOptions
    from bgclear.engines.cpu import cpu_name
    from bgclear.stages.segment import OnnxSegmenter
    from bgclear.models.registry import get_model

    rgb = np.asarray(Image.open(args.source).convert("RGB"))
    spec = get_model(args.model)
    segmenters, loads = {}, {}
    for config in args.configs:
        engine, _, precision = config.partition(":")
        t = time.perf_counter()
        segmenters[config] = OnnxSegmenter(spec, EngineOptions(engine=engine, precision=precision, threads=args.threads))
        loads[config] = time.perf_counter() - t
    outputs = {c: s.predict(rgb) for c, s in segmenters.items()}  # warm-up, and the outputs to compare
    times: dict[str, list[float]] = {c: [] for c in segmenters}
    for _ in range(args.rounds):
        for config, seg in segmenters.items():
            t = time.perf_counter()
            seg.predict(rgb)
            times[config].append(time.perf_counter() - t)
    base = statistics.median(times[args.configs[0]])
    print(f"{args.model}, {args.threads} threads, {args.rounds} interleaved rounds on {cpu_name()} ({time.strftime('%Y-%m-%d')})")
    print("| engine | median s | speed vs first | load s | max abs diff vs first |")
    print("|---|---|---|---|---|")
    ref = outputs[args.configs[0]]
    for config in args.configs:
        med = statistics.median(times[config])
        diff = float(np.abs(outputs[config] - ref).max())
        print(f"| {config} | {med:.3f} | {base / med:.2f}x | {loads[config]:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
