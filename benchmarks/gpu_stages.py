"""The default cutout on a GPU (issue 11): the part of benchmarks/gpu_check.py that runs the
default ISNet through onnxruntime's CUDA provider and the stages after segmentation with torch
(bgclear.stages.ondevice), checked against the numpy stages on the CPU and timed.

Run it through gpu_check.py (``--part stages`` for this part alone). The photo is
examples/cat.png enlarged to each size (a real subject, so a real unknown band).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cat.png"
#: Device against CPU numpy on the same probability. The resizes and box filters follow
#: OpenCV's tables, so only float rounding differs (fused multiply-adds on the GPU); the
#: guided filter's 3x3 inverse amplifies it, hence alpha to a fraction of one 8-bit level.
TOLERANCE = {"alpha_max": 2e-3, "alpha_mean": 1e-5, "levels_max": 2, "levels_fraction": 5e-3, "probability_max": 5e-2}


def photo_size(megapixels: float) -> tuple[int, int]:
    """(W, H): 4000x3000 for 12 MP, 6000x4000 for 24, else 4:3."""
    named = {12.0: (4000, 3000), 24.0: (6000, 4000)}
    if megapixels in named:
        return named[megapixels]
    w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    return w, int(round(w * 3 / 4))


def test_photo(megapixels: float) -> np.ndarray:
    """uint8 (H, W, 3): the sample photo enlarged (bicubic) to the size."""
    from bgclear.io.decode import decode

    return cv2.resize(np.ascontiguousarray(decode(SAMPLE).rgb), photo_size(megapixels), interpolation=cv2.INTER_CUBIC)


def card() -> dict:
    """The GPU's name, memory and driver, as torch and nvidia-smi report them."""
    import torch

    if not torch.cuda.is_available():
        return {"gpu": None}
    props = torch.cuda.get_device_properties(0)
    row = {"gpu": props.name, "memory_gib": round(props.total_memory / 2**30, 1), "torch_cuda": torch.version.cuda}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        row["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        row["driver"] = None
    return row


def ort_cuda() -> tuple[str | None, bool]:
    """(onnxruntime version, whether its CUDA provider is there)."""
    try:
        import onnxruntime
    except ImportError:
        return None, False
    return onnxruntime.__version__, "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def make_session(device: str) -> tuple[object, dict]:
    """The default Session for ``device`` and a row saying where segmentation and the stages run.

    With onnxruntime's CUDA provider ISNet runs on the GPU (``Session(device="cuda")``); without
    it ISNet runs on the CPU and the stages are put on ``device`` by hand, so they are still checked.
    """
    from bgclear import Session
    from bgclear.engines.torch import resolve_device

    version, has_cuda = ort_cuda()
    row = {"onnxruntime": version, "cuda_provider": has_cuda}
    if device.startswith("cuda") and has_cuda:
        session = Session(device=device)
    else:
        if device.startswith("cuda"):
            row["note"] = "onnxruntime has no CUDA provider (pip install onnxruntime-gpu): ISNet runs on the CPU here"
        session = Session(device="cpu")
        session.stages_device = resolve_device(device)
    row.update(segmenter=session.describe(), stages=str(session.stages_device))
    return session, row


def _sync(device) -> None:
    import torch

    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _levels(got: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    diff = np.abs(got.astype(np.int16) - ref)
    return int(diff.max()), float((diff > 0).mean())


def compare(session, img: np.ndarray, megapixels: float) -> list[dict]:
    """Device stages against the numpy stages on the same probability; ISNet on the GPU against the CPU."""
    from bgclear.backends import make_segmenter
    from bgclear.engines import EngineOptions

    prepared = session.prepare(img)
    device = session.stages_device
    session.stages_device = None
    try:
        host = session.finish(prepared)
    finally:
        session.stages_device = device
    got = session.finish(prepared)
    diff = np.abs(got.alpha - host.alpha)
    rows = [{"check": f"alpha, {device} vs cpu numpy", "megapixels": megapixels, "max_abs_diff": float(diff.max()),
             "mean_abs_diff": float(diff.mean()), "band_mpx": round(float((host.trimap == 128).mean()) * megapixels, 3),
             "ok": bool(diff.max() <= TOLERANCE["alpha_max"] and diff.mean() <= TOLERANCE["alpha_mean"]), "required": True}]
    for name, a, b in (("foreground", got.foreground, host.foreground), ("composed RGBA", got.pixels, host.pixels)):
        worst, share = _levels(a, b)
        rows.append({"check": f"{name} (8-bit levels), {device} vs cpu numpy", "megapixels": megapixels,
                     "max_abs_diff": worst, "fraction_differing": share, "required": True,
                     "ok": worst <= TOLERANCE["levels_max"] and share <= TOLERANCE["levels_fraction"]})
    rows.append({"check": "trimap identical", "megapixels": megapixels, "ok": bool((got.trimap == host.trimap).all()),
                 "required": True})
    engine = getattr(session.segmenter, "engine", None)
    if engine is not None and str(engine.device).startswith("cuda"):
        cpu = make_segmenter(session.segmenter_name, options=EngineOptions(device="cpu"))
        diff = np.abs(prepared.probability - cpu.predict(img))
        # Reported, not required: the CUDA provider may use TF32 convolutions.
        rows.append({"check": "isnet probability, onnxruntime cuda vs cpu", "megapixels": megapixels,
                     "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                     "ok": bool(diff.max() <= TOLERANCE["probability_max"]), "required": False})
    return rows


def _median_run(session, source, repeat: int) -> tuple[float, dict[str, float]]:
    """Median seconds of ``session.remove(source)`` (array or file bytes in, no encoding) and its stages."""
    totals, stages = [], []
    for _ in range(repeat):
        _sync(session.stages_device)
        t = time.perf_counter()
        cut = session.remove(source)
        _sync(session.stages_device)
        totals.append(time.perf_counter() - t)
        stages.append(cut.timings)
    keys = stages[0].keys()
    return statistics.median(totals), {k: round(statistics.median(s.get(k, 0.0) for s in stages), 4) for k in keys}


def timings(session, img: np.ndarray, megapixels: float, repeat: int) -> list[dict]:
    """End-to-end cutout (segment, settle, trimap, matte, foreground, compose; no PNG encoding) and its stages:
    array in and JPEG bytes in, the stages on the device, then the numpy stages for the ratio."""
    import torch

    device = session.stages_device
    session.remove(img)  # warm-up: CUDA kernels, cuDNN autotune, allocators
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rows = []
    seconds, stages = _median_run(session, img, repeat)
    row = {"run": f"cutout, stages on {device}, array in", "megapixels": megapixels, "seconds": round(seconds, 4),
           "stages": stages, "repeat": repeat}
    if device is not None and device.type == "cuda":
        row["torch_cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    rows.append(row)
    jpeg = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    seconds, stages = _median_run(session, jpeg, repeat)
    rows.append({"run": f"cutout, stages on {device}, JPEG bytes in (decode included)", "megapixels": megapixels,
                 "seconds": round(seconds, 4), "stages": stages, "repeat": repeat})
    session.stages_device = None
    try:
        seconds, stages = _median_run(session, img, max(1, repeat // 2))
    finally:
        session.stages_device = device
    rows.append({"run": "cutout, numpy stages on the CPU, array in", "megapixels": megapixels,
                 "seconds": round(seconds, 4), "stages": stages, "repeat": max(1, repeat // 2)})
    return rows


def run(device: str, sizes: list[float], repeat: int) -> dict:
    """This part's report: where things ran, the checks and the timings (each row printed as it comes)."""
    import torch

    from bgclear.engines.torch import describe, resolve_device

    report = {"card": card(), "device": describe(resolve_device(device)), "torch": torch.__version__}
    session, where = make_session(device)
    report["where"] = where
    print(json.dumps(report), flush=True)
    report["checks"], report["timings"] = [], []
    for mp in sizes:
        img = test_photo(mp)
        for row in compare(session, img, mp):
            report["checks"].append(row)
            print(json.dumps(row), flush=True)
        for row in timings(session, img, mp, repeat):
            report["timings"].append(row)
            print(json.dumps(row), flush=True)
    return report
