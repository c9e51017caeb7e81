"""GPU check: the default cutout on the GPU, and the PyTorch backends CUDA vs CPU, then timings.

    PYTHONPATH=src python benchmarks/gpu_check.py                   # on a CUDA machine: both parts, 12 and 24 MP
    PYTHONPATH=src python benchmarks/gpu_check.py --part stages     # the default cutout alone (about a minute)
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --small  # smoke run anywhere: tiny models, small photos
    PYTHONPATH=src python benchmarks/gpu_check.py --part clicks --segmenter u2netp   # MobileSAM clicks (issue 10)

It needs only what scripts/install.sh installs (torch, onnxruntime, the pulled ISNet) and no
network; onnxruntime-gpu in place of onnxruntime puts ISNet on the GPU (otherwise the report
says so and ISNet runs on the CPU). The ``networks`` part also needs the ``torch`` extra
(transformers); without it that part is skipped with a note. Exit status 1 when a required
check fails; the last line printed is one JSON summary of everything.

0. The default cutout (``stages``, benchmarks/gpu_stages.py, issue 11): ISNet through
   onnxruntime's CUDA provider, and trimap, guided matting, foreground and compose on the
   GPU (bgclear.stages.ondevice) checked against the numpy stages on the CPU on the same
   probability (alpha, foreground and composed pixels, tolerances in gpu_stages.TOLERANCE),
   then the end-to-end cutout and each stage timed (array in and JPEG bytes in, no PNG
   encoding, medians of ``--repeat`` runs, ``torch.cuda.synchronize`` around each).

1. (``networks``) Correctness: InSPyReNet (saliency probability) and ViTMatte (alpha of one
   window) run on CPU in fp32 and on ``--device`` in fp32, bf16 and fp16 autocast;
   the largest absolute differences are printed and checked against tolerances
   (fp32 and the precision used by default must pass; the other is reported).
2. Timings at each ``--mp`` size: segmentation (``base`` 1024 and ``pyramid``
   1024 + 2048 modes), ViTMatte refinement of the band, and the whole pipeline
   (``Session.remove``: segment, trimap, matte, foreground, compose), with peak
   CUDA memory. Weights are random (tamed so activations stay finite in fp16);
   speed and memory do not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def tame(model, seed: int = 0) -> None:
    """Random weights with moderate activations (fan-in scaled), BatchNorm statistics near identity."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("threshold"):
                p.fill_(0.5)
            elif p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
        for name in ("attention0", "attention1", "attention2"):  # Laplacian heads: keep their output small
            head = getattr(model, name, None)
            if head is not None:
                head.conv_out4.bn.weight.mul_(0.05)


def make_checkpoints(root: Path, small: bool) -> tuple[Path, Path]:
    import torch
    from bench_vitmatte_memory import vitmatte_config
    from transformers import VitMatteForImageMatting

    from bgclear.networks.inspyrenet.model import InSPyReNet
    from bgclear.networks.inspyrenet.swin import SwinTransformer, swin_b

    torch.manual_seed(0)
    backbone = SwinTransformer(32, (2, 2, 2, 2), (2, 2, 4, 4), 4) if small else swin_b()
    net = InSPyReNet(backbone, backbone.out_channels, 16 if small else 64, (1024, 1024))
    tame(net)
    torch.save(net.state_dict(), root / "ckpt_base.pth")
    matte = VitMatteForImageMatting(vitmatte_config("tiny" if small else "small"))
    tame(matte, 1)
    matte.save_pretrained(root / "vitmatte")
    return root / "ckpt_base.pth", root / "vitmatte"


def photo(megapixels: float, seed: int = 0, with_mask: bool = False):
    """A 3:2 photo: smooth background, a textured wobbly disc. uint8 (H, W, 3) (and the disc, bool (H, W))."""
    w = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    h = int(round(w / 1.5))
    yy, xx = np.ogrid[:h, :w]
    angle = np.arctan2(yy - h / 2, xx - w / 2)
    inside = np.hypot(yy - h / 2, xx - w / 2) < 0.35 * h * (1 + 0.08 * np.sin(7 * angle))
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (40, 90, 170)
    img[inside] = (200, 60, 40)
    img += rng.integers(0, 20, (h, w, 1), dtype=np.uint8)
    return (img, inside) if with_mask else img


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn, repeat: int = 1):
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    sync(device)
    row = {"seconds": round((time.perf_counter() - t0) / repeat, 3)}
    if device.startswith("cuda"):
        row["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out, row


# fp32 must match the CPU closely; each reduced precision gets the error its mantissa
# allows after two dozen transformer blocks (bf16 keeps 8 bits, fp16 11).
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 5e-2}


def precisions():
    import torch

    return [("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)]


def compare(check: str, got: np.ndarray, ref: np.ndarray, label: str, default: str) -> dict:
    """One correctness row. Only fp32 and the precision the product uses by default
    (``default``) are required; the other is reported so a regression is visible."""
    finite = bool(np.isfinite(got).all())
    err = float(np.abs(got - ref).max()) if finite else float("nan")
    mean = float(np.abs(got - ref).mean()) if finite else float("nan")
    ok = finite and err <= TOLERANCE[label]
    return {"check": check, "max_abs_diff": err, "mean_abs_diff": mean, "tolerance": TOLERANCE[label],
            "finite": finite, "ok": ok, "required": label in ("fp32", default)}


class patch_dtype:
    """Make the backends' autocast use ``dtype`` (None: leave the default) inside the block."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __enter__(self):
        from bgclear.engines import torch as device_module

        self.saved = device_module.half_dtype
        if self.dtype is not None:
            device_module.half_dtype = lambda _device: self.dtype
        return self

    def __exit__(self, *exc):
        from bgclear.engines import torch as device_module

        device_module.half_dtype = self.saved


def correctness(ckpt: Path, folder: Path, device: str, small: bool) -> list[dict]:
    import torch

    from bgclear.networks.inspyrenet.checkpoints import load_inspyrenet
    from bgclear.engines.torch import autocast, half_dtype, resolve_device
    from bgclear.families.inspyrenet import to_tensor
    from bgclear.families.vitmatte import VitMatteRefiner
    from bgclear.stages.trimap import make_trimap

    dev = resolve_device(device)
    default = str(half_dtype(dev)).replace("torch.", "").replace("bfloat16", "bf16").replace("float16", "fp16")
    rows = []
    img = photo(0.3 if small else 2.0, seed=1)
    side = 256 if small else 1024
    x = to_tensor(img, (side, side))
    net, _ = load_inspyrenet(ckpt, (side, side))
    # Compared on the final logits scaled by their largest magnitude: random weights
    # saturate the sigmoid, and the per-image min-max stretch would then hide any error.
    with torch.inference_mode():
        ref = net(x)[0][-1][0, 0].numpy()
        scale = float(np.abs(ref).max()) or 1.0
        net = net.to(dev)
        for label, dtype in precisions():
            with autocast(dev, dtype is not None, dtype=dtype):
                got = net(x.to(dev))[0][-1][0, 0].float().cpu().numpy()
            row = compare(f"inspyrenet {label} vs cpu (logits / max |logit|)", got / scale, ref / scale, label, default)
            rows.append({**row, "logit_scale": scale})
    # The product's guard: a segmenter forced to fp16 must still answer finite values.
    from bgclear.backends import make_segmenter

    seg = make_segmenter("inspyrenet", device=device)
    with patch_dtype(torch.float16):
        prob = seg.predict(img)
    rows.append({"check": "segmenter fp16 guard", "finite": bool(np.isfinite(prob).all()),
                 "fell_back_to_fp32": seg.half is False and dev.type == "cuda",
                 "ok": bool(np.isfinite(prob).all()), "required": True})
    crop = img[:512, :512] if not small else img[:256, :256]
    yy, xx = np.ogrid[: crop.shape[0], : crop.shape[1]]
    trimap = make_trimap((np.hypot(yy - crop.shape[0] / 2, xx - crop.shape[1] / 2) < crop.shape[0] / 3).astype(np.float32))
    cpu = VitMatteRefiner(folder, device="cpu", window=512, overlap=64).predict_window(crop, trimap)
    for label, dtype in precisions():
        r = VitMatteRefiner(folder, device=device, half=dtype is not None, window=512, overlap=64)
        with patch_dtype(dtype):
            got = r.predict_window(crop, trimap)
        row = compare(f"vitmatte {label} vs cpu", got, cpu, label, default)
        if dtype is not None and not r.half:  # the guard saw non-finite values and reran in fp32
            row.update(fell_back_to_fp32=True, ok=False)
        rows.append(row)
    return rows


def timings(device: str, sizes: list[float], small: bool) -> list[dict]:
    from bgclear import Session
    from bgclear.backends import make_refiner, make_segmenter
    from bgclear.stages.trimap import make_trimap

    rows = []
    segs = {name: make_segmenter(name, device=device) for name in ("inspyrenet", "inspyrenet-hr")}
    if small:
        segs["inspyrenet-hr"].hr_side, segs["inspyrenet-hr"].threshold = 1536, 600
    refiner = make_refiner("vitmatte", device=device)
    session = Session(segmenter="inspyrenet", refiner="vitmatte", device=device)
    for mp in sizes:
        img, inside = photo(mp, with_mask=True)
        for name, seg in segs.items():
            seg.predict(img)  # warm-up (cuDNN autotune, allocator)
            prob, row = timed(device, lambda: seg.predict(img))
            rows.append({"stage": f"segment {name} ({seg.mode})", "megapixels": mp, "model_res": list(prob.shape), **row})
        # Random weights segment nothing in particular: time the refiner on the true subject's band.
        coarse = inside.astype(np.float32)
        trimap = make_trimap(coarse)
        _, row = timed(device, lambda: refiner.refine(img, trimap, coarse))
        rows.append({"stage": "refine vitmatte", "megapixels": mp, "band_mpx": round(float((trimap == 128).mean()) * mp, 3),
                     **row})
        cut, row = timed(device, lambda: session.remove(img))
        rows.append({"stage": "pipeline inspyrenet+vitmatte", "megapixels": mp, **row,
                     "band_mpx": round(float((cut.trimap == 128).mean()) * mp, 3),
                     "stages": {k: round(v, 3) for k, v in cut.timings.items()}})
        for r in rows[-4:]:
            print(json.dumps(r), flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="tiny models and small photos (CPU smoke run)")
    p.add_argument("--mp", type=float, nargs="+", help="photo sizes for timings (default 12 24; 0.3 0.6 with --small)")
    p.add_argument("--json", type=Path, help="also write all rows here")
    p.add_argument("--part", choices=["all", "stages", "networks", "clicks"], default="all",
                   help="stages: the default cutout (ISNet + stages on the device); networks: the PyTorch backends; "
                        "clicks: MobileSAM and a touch-up click on the device (benchmarks/gpu_clicks.py; not in all)")
    p.add_argument("--segmenter", default="isnet", help="clicks part: the segmenter of the automatic cutout before the clicks")
    p.add_argument("--repeat", type=int, help="runs per timing of the stages part (default 5; 1 with --small)")
    args = p.parse_args()
    sizes = args.mp or ([0.3, 0.6] if args.small else [12.0, 24.0])
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    from bgclear.doctor import doctor_report
    from bgclear.models.local import add_local_model
    from bgclear.engines.torch import describe, resolve_device

    print(f"# device {describe(resolve_device(args.device))}, torch {torch.__version__}, small={args.small}")
    report: dict = {"checks": []}
    if args.part in ("all", "stages"):  # first: the networks part points BGCLEAR_HOME elsewhere
        import gpu_stages

        stage_sizes = args.mp or ([2.0] if args.small else [12.0, 24.0])
        report["stages"] = gpu_stages.run(args.device, stage_sizes, args.repeat or (1 if args.small else 5))
        report["checks"] += report["stages"]["checks"]
    if args.part in ("all", "networks"):
        try:
            import transformers  # noqa: F401
        except ImportError as exc:
            report["networks"] = f"skipped: {exc} (pip install -e '.[torch]')"
            print("#", report["networks"], flush=True)
        else:
            with tempfile.TemporaryDirectory(prefix="bgclear-gpu-check-") as tmp:
                os.environ["BGCLEAR_HOME"] = str(Path(tmp) / "home")
                ckpt, folder = make_checkpoints(Path(tmp), args.small)
                add_local_model("inspyrenet", ckpt, base_size=256 if args.small else None)
                add_local_model("vitmatte", folder, window=512 if args.small else None, overlap=64 if args.small else None)
                checks = correctness(ckpt, folder, args.device, args.small)
                for c in checks:
                    print(json.dumps(c), flush=True)
                rows = timings(args.device, sizes, args.small)
                report["networks"] = {"doctor": doctor_report(args.device)["torch"], "checks": checks, "timings": rows}
                report["checks"] += checks
    if args.part == "clicks":
        import gpu_clicks

        report["clicks"] = gpu_clicks.run(args.device, args.mp or ([1.0] if args.small else [12.0]),
                                          args.repeat or (1 if args.small else 5), args.segmenter)
        report["checks"] += report["clicks"]["checks"]
    failed = [c["check"] for c in report["checks"] if c["required"] and not c["ok"]]
    report["failed"] = failed
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("# correctness:", "all within tolerance" if not failed else f"FAILED {failed}")
    print(json.dumps({"summary": report}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
