"""Peak memory of the windowed ViTMatte refinement as the photo grows (random weights).

Each size runs in a fresh process: the model is built (ViTMatte-S architecture
by default), a photo with a disc-shaped subject and its trimap are made, then
``VitMatteRefiner.refine`` runs while a thread samples the resident set size.
Reported per size: windows run, seconds, RSS before refining, peak RSS during
it, the growth, and the part of the growth that is not the per-pixel output
arrays (float32 alpha + bool band mask = 5 bytes a pixel), i.e. what the
network's windows cost. That last number should not grow with the photo.

    python benchmarks/bench_vitmatte_memory.py                     # 4, 12, 24 MP
    python benchmarks/bench_vitmatte_memory.py --mp 4 12 --window 1024 --overlap 128 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np


def vitmatte_config(size: str):
    """Architecture of the published ViTMatte-S / -B checkpoints, or a tiny one for smoke runs."""
    from transformers import VitDetConfig, VitMatteConfig

    if size == "tiny":
        hidden, heads, layers, window, blocks, residual = 32, 2, 4, 4, [0, 2], [1]
    else:
        hidden, heads = (384, 6) if size == "small" else (768, 12)
        layers, window, blocks, residual = 12, 14, [0, 1, 3, 4, 6, 7, 9, 10], [2, 5, 8, 11]
    backbone = VitDetConfig(
        num_channels=4, image_size=512, pretrain_image_size=224, patch_size=16, hidden_size=hidden,
        num_attention_heads=heads, num_hidden_layers=layers, use_absolute_position_embeddings=True,
        use_relative_position_embeddings=True, window_size=window, window_block_indices=blocks,
        residual_block_indices=residual, out_features=[f"stage{layers}"],
    )
    return VitMatteConfig(backbone_config=backbone, hidden_size=hidden, convstream_hidden_sizes=[48, 96, 192],
                          fusion_hidden_sizes=[256, 128, 64, 32])


def scene(megapixels: float, seed: int = 0):
    """3:2 photo (uint8 noise), trimap and coarse probability of a wobbly disc, band as the pipeline makes it."""
    from bgclear.stages.trimap import make_trimap

    w = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    h = int(round(w / 1.5))
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.ogrid[:h, :w]
    angle = np.arctan2(yy - h / 2, xx - w / 2)
    radius = 0.35 * h * (1 + 0.08 * np.sin(7 * angle))
    coarse = (np.hypot(yy - h / 2, xx - w / 2) < radius).astype(np.float32)
    return rgb, make_trimap(coarse), coarse


def child(args) -> None:
    import psutil
    import torch
    from transformers import VitMatteForImageMatting

    from bgclear.families.vitmatte import VitMatteRefiner
    from bgclear.stages.trimap import UNKNOWN

    torch.manual_seed(0)
    model = VitMatteForImageMatting(vitmatte_config(args.config)).eval()
    refiner = VitMatteRefiner("(random weights)", device=args.device, window=args.window, overlap=args.overlap,
                              model=model)
    rgb, trimap, coarse = scene(args.mp[0])
    proc = psutil.Process()
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    calls = [0]
    inner = refiner.predict_window

    def counted(*a):
        calls[0] += 1
        return inner(*a)

    refiner.predict_window = counted
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    refiner.refine(rgb, trimap, coarse)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    h, w = trimap.shape
    mib = 2**20
    per_pixel = 5 * h * w / mib
    row = {
        "megapixels": round(h * w / 1e6, 1), "size": f"{w}x{h}", "band_pixels": int((trimap == UNKNOWN).sum()),
        "windows": calls[0], "seconds": round(seconds, 1), "rss_before_mib": round(before / mib),
        "peak_rss_mib": round(peak[0] / mib), "growth_mib": round((peak[0] - before) / mib),
        "output_arrays_mib": round(per_pixel), "growth_minus_output_mib": round((peak[0] - before) / mib - per_pixel),
    }
    if args.device.startswith("cuda"):
        row["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / mib)
    print(json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mp", type=float, nargs="+", default=[4, 12, 24], help="photo sizes in megapixels")
    p.add_argument("--config", choices=["tiny", "small", "base"], default="small")
    p.add_argument("--window", type=int, default=1024)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(f"# ViTMatte-{args.config} random weights, window {args.window}, overlap {args.overlap}, {args.device}")
    rows = []
    for mp in args.mp:
        cmd = [sys.executable, __file__, "--child", "--mp", str(mp), "--config", args.config,
               "--window", str(args.window), "--overlap", str(args.overlap), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if out.returncode != 0:
            sys.exit(f"{mp} MP failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    extra = [r["growth_minus_output_mib"] for r in rows]
    print(f"# network memory beyond the output arrays: {extra} MiB "
          f"(spread {max(extra) - min(extra)} MiB over {rows[0]['megapixels']}..{rows[-1]['megapixels']} MP)")


if __name__ == "__main__":
    main()
