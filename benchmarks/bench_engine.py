"""Speed and memory of the engine at 12 MP and 24 MP, stage by stage.

    python benchmarks/bench_engine.py --sizes 4000x3000 6000x4000 --repeat 5
    python benchmarks/bench_engine.py --sizes 4000x3000 --engines onnxruntime:f32 openvino:f32 openvino:bf16

Each size runs in a fresh subprocess so its peak resident memory (ru_maxrss)
is its own. The test photo is a real photo upscaled to the target size at run
time (the content of a real photo matters, its exact pixels do not): by default
the bundled examples/cat.png, or --source PATH.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_photo(source: Path, size: tuple[int, int], dest: Path) -> Path:
    from PIL import Image

    img = Image.open(source).convert("RGB")
    scale = max(size[0] / img.width, size[1] / img.height)
    big = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    left, top = (big.width - size[0]) // 2, (big.height - size[1]) // 2
    big.crop((left, top, left + size[0], top + size[1])).save(dest, "JPEG", quality=92)
    return dest


def run_one(path: Path, repeat: int, segmenter: str, refiner: str, numpy_hugepages: bool, engine: str = "auto",
            precision: str = "auto") -> dict:
    """Runs inside the child process, set up as the CLI and the server set up theirs."""
    import resource

    from bgclear import Session
    from bgclear.process import prefer_small_pages

    if not numpy_hugepages:
        prefer_small_pages()

    t = time.perf_counter()
    session = Session(segmenter=segmenter, refiner=refiner, engine=engine, precision=precision)
    load = time.perf_counter() - t
    runs = []
    for _ in range(repeat + 1):  # the first run warms up onnxruntime and caches
        t = time.perf_counter()
        cutout = session.remove(path)
        png = cutout.encode("png")
        total = time.perf_counter() - t
        runs.append({**cutout.timings, "total": total, "png_bytes": len(png)})
    runs = runs[1:]
    stages = [k for k in runs[0] if k not in ("total", "png_bytes")]
    median = {k: statistics.median(r[k] for r in runs) for k in stages + ["total"]}
    after_segment = sum(median[k] for k in stages if k not in ("decode", "segment"))
    return {
        "file": path.name,
        "engine": session.describe(),
        "megapixels": cutout.size[0] * cutout.size[1] / 1e6,
        "size": cutout.size,
        "load_s": load,
        "median_s": median,
        "totals_s": [r["total"] for r in runs],
        "after_segment_s": after_segment,
        "after_segment_over_segment": after_segment / median["segment"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "png_mb": runs[-1]["png_bytes"] / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["4000x3000", "6000x4000"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--source", type=Path, default=REPO / "examples" / "cat.png")
    ap.add_argument("--segmenter", default="isnet")
    ap.add_argument("--refiner", default="guided")
    ap.add_argument("--engines", nargs="+", default=["auto:auto"], metavar="ENGINE:PRECISION",
                    help="inference engines to compare, each in its own process, e.g. onnxruntime:f32 openvino:bf16")
    ap.add_argument("--json", type=Path, help="write results here")
    ap.add_argument("--numpy-hugepages", action="store_true",
                    help="leave numpy's huge-page advice on (the library default; the CLI and server turn it off)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        engine, _, precision = args.engines[0].partition(":")
        print(json.dumps(run_one(args.child, args.repeat, args.segmenter, args.refiner, args.numpy_hugepages,
                                 engine, precision or "auto")))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes:
            w, h = (int(v) for v in spec.lower().split("x"))
            photo = make_photo(args.source, (w, h), Path(tmp) / f"photo_{w}x{h}.jpg")
            for config in args.engines:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(photo), "--repeat", str(args.repeat),
                     "--segmenter", args.segmenter, "--refiner", args.refiner, "--engines", config]
                    + (["--numpy-hugepages"] if args.numpy_hugepages else []),
                    capture_output=True, text=True, check=True,
                )
                res = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(res)
                m = res["median_s"]
                shares = ", ".join(f"{k} {v:.2f}s ({100 * v / m['total']:.0f}%)" for k, v in m.items() if k != "total")
                print(f"{w}x{h} ({res['megapixels']:.1f} MP) [{res['engine']}]: median {m['total']:.2f}s over {args.repeat} runs; {shares}; "
                      f"after-segmentation/segmentation = {res['after_segment_over_segment']:.2f}; "
                      f"peak RSS {res['peak_rss_mb']:.0f} MB; PNG {res['png_mb']:.1f} MB", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
