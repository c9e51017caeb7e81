"""MobileSAM runtimes side by side: PyTorch, onnxruntime and OpenVINO (f32, bf16) on the same photo.

    python benchmarks/bench_mobilesam.py --repeat 7 --threads 2 [--image examples/cat.png] [--json out.json]

Needs ``bgclear models pull mobilesam`` (weights and their ONNX export) and PyTorch. Every runtime
runs through :class:`bgclear.promptable.PromptableSegmenter`; the rounds interleave the runtimes
(encoder once, then ``--clicks`` decoder calls, per runtime per round), so load from other work on
the machine falls on all of them alike; medians are reported, with each runtime's ratio to
PyTorch. Accuracy: the largest absolute difference of the image features from PyTorch's, and the
IoU of each runtime's masks (>0.5) with PyTorch's for a point, a box and a box with a mask prior.
Memory (``--memory``): each runtime alone in a fresh process: resident set after the imports,
after loading, after one embed + one click, and the peak (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def configs(threads: int) -> dict:
    from bgclear.engines import EngineOptions

    out: dict = {"torch f32": dict(runtime="torch")}
    for engine, precision in (("onnxruntime", "f32"), ("openvino", "f32"), ("openvino", "bf16")):
        out[f"{engine} {precision}"] = dict(options=EngineOptions(engine=engine, precision=precision, threads=threads))
    return out


def memory_child(name: str, image: str, threads: int) -> None:
    """One runtime in this process: print its resident-set sizes as JSON."""
    import resource

    import bgclear.promptable as promptable

    if name.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
    rgb = np.asarray(Image.open(image).convert("RGB"))
    row = {"after_imports_mb": rss_mb()}
    seg = promptable.PromptableSegmenter(**configs(threads)[name])
    row["after_load_mb"] = rss_mb()
    seg.predict(seg.embed(rgb), promptable.Prompts(keep=[(rgb.shape[1] / 2, rgb.shape[0] / 2)]))
    row["after_first_click_mb"] = rss_mb()
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux
    print(json.dumps(row))


def memory(image: str, threads: int) -> dict:
    import subprocess

    rows = {}
    for name in configs(threads):
        out = subprocess.run([sys.executable, __file__, "--child", name, "--image", image, "--threads", str(threads)],
                             capture_output=True, text=True, check=True).stdout
        rows[name] = json.loads(out.strip().splitlines()[-1])
        print(f"{name:<17} " + "  ".join(f"{k} {v:.0f}" for k, v in rows[name].items()))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="examples/cat.png")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--clicks", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--memory", action="store_true", help="resident memory of each runtime, one process each")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return memory_child(args.child, args.image, args.threads)
    if args.memory:
        rows = memory(args.image, args.threads)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return

    import torch

    torch.set_num_threads(args.threads)
    from bgclear.engines.cpu import cpu_name
    from bgclear.promptable import PromptableSegmenter, Prompts

    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    h, w = rgb.shape[:2]
    segs, load_s = {}, {}
    for name, kw in configs(args.threads).items():
        t = time.perf_counter()
        segs[name] = PromptableSegmenter(**kw)
        segs[name].embed(rgb)  # first run: lazy allocations and compilation belong to loading
        load_s[name] = time.perf_counter() - t
    box = (0.05 * w, 0.05 * h, 0.9 * w, 0.95 * h)
    prompts = {"point": Prompts(keep=[(w / 2, h / 2)]), "box": Prompts(box=box),
               "box+prior": Prompts(box=box, mask=np.pad(np.ones((h // 2, w // 2), np.float32),
                                                         ((h // 4, h - h // 2 - h // 4), (w // 4, w - w // 2 - w // 4))))}
    embs = {name: seg.embed(rgb) for name, seg in segs.items()}
    ref = embs["torch f32"]
    accuracy = {}
    for name, seg in segs.items():
        row = {"features_max_abs_diff": float(np.abs(embs[name].features - ref.features).max())}
        for label, pr in prompts.items():
            a, b = seg.predict(embs[name], pr) > 0.5, segs["torch f32"].predict(ref, pr) > 0.5
            row[f"iou_{label}"] = float((a & b).sum() / max((a | b).sum(), 1))
        accuracy[name] = row
    enc = {n: [] for n in segs}
    dec = {n: [] for n in segs}
    click = Prompts(keep=[(w / 2, h / 2), (w / 3, h / 2)], drop=[(w * 0.9, h * 0.1)])
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        for name, seg in segs.items():
            t = time.perf_counter()
            e = seg.embed(rgb)
            enc[name].append(time.perf_counter() - t)
            for _ in range(args.clicks):
                t = time.perf_counter()
                seg.predict(e, click)
                dec[name].append(time.perf_counter() - t)
    base_e, base_d = statistics.median(enc["torch f32"]), statistics.median(dec["torch f32"])
    rows = {n: {"encoder_s": statistics.median(enc[n]), "decoder_ms": 1000 * statistics.median(dec[n]),
                "encoder_vs_torch": statistics.median(enc[n]) / base_e,
                "decoder_vs_torch": statistics.median(dec[n]) / base_d,
                "load_and_first_embed_s": load_s[n], **accuracy[n]} for n in segs}
    result = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d"), "threads": args.threads, "repeat": args.repeat,
              "image": f"{args.image} {w}x{h}", "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0],
              "python": platform.python_version(), "torch": torch.__version__, "runtimes": rows}
    print(f"{result['cpu']}, {args.threads} threads, {args.repeat} rounds, load average {load_before:.1f} -> "
          f"{result['load_avg_after']:.1f}")
    print(f"{'runtime':<17} {'encoder s':>9} {'x torch':>7} {'click ms':>8} {'x torch':>7} {'feat diff':>9} "
          f"{'IoU pt/box/prior vs torch':>26} {'load s':>6}")
    for n, r in rows.items():
        ious = "/".join(f"{r[f'iou_{k}']:.4f}" for k in prompts)
        print(f"{n:<17} {r['encoder_s']:>9.3f} {r['encoder_vs_torch']:>7.2f} {r['decoder_ms']:>8.1f} "
              f"{r['decoder_vs_torch']:>7.2f} {r['features_max_abs_diff']:>9.2g} {ious:>26} {r['load_and_first_embed_s']:>6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
