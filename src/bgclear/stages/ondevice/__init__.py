"""The stages after segmentation on a torch device (a GPU), one upload and one download per photo.

``Session.finish()`` uses this on a CUDA session with the ``guided`` refiner: the photo goes
to the device once as uint8; the trimap and coarse probability are brought to full size
(:mod:`.trimap`), refined (:mod:`.guided`), decontaminated (:mod:`.foreground`) and
composed (:mod:`.compose`) there, and only the results come back: alpha float32 (H, W),
foreground uint8 (H, W, 3), the trimap uint8 (H, W) and the composed pixels uint8.
The maths is the numpy stages' (the resizes and box filters follow OpenCV's conventions,
:mod:`.resample`), so the results agree with the CPU path within float rounding
(tests/test_ondevice_stages.py, benchmarks/gpu_check.py).

What stays on the CPU: settling and the trimap at the working size (~1 MP, numpy, already
cheap), and compose with a shadow or a crop (the numpy compose on the downloaded arrays).
Other refiners keep the numpy path.

Tests and benchmarks run this path on torch's CPU device by assigning
``session.stages_device = torch.device("cpu")`` (``None`` is the numpy path).
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from .. import compose as compose_stage
from ..trimap import working_trimap

log = logging.getLogger("bgclear")

__all__ = ["finish_on_device", "stages_device"]


def stages_device(device: str | None, segmenter, refiner):
    """The ``torch.device`` the stages after segmentation run on for a session, or ``None`` (numpy).

    ``device`` is the session's ``--device``: ``cuda`` / ``cuda:N`` use that GPU; ``auto`` uses the
    GPU the segmenter was put on (so a CPU machine never imports torch for this); ``cpu`` never.
    A CUDA session without a CUDA-enabled torch keeps the numpy stages, with one warning: the
    segmenter still runs on the GPU, and these stages are a speed-up, not a different answer.
    """
    from ...engines.device import parse_device
    from ..matte.guided import GuidedRefiner

    name = parse_device(device)
    if name == "auto":
        engine = getattr(segmenter, "engine", None)
        name = str(engine.device if engine is not None else getattr(segmenter, "device", "cpu"))
    if not name.startswith("cuda") or not isinstance(refiner, GuidedRefiner):
        return None
    try:
        from ...engines.torch import cuda_problem, resolve_device

        problem = cuda_problem()
    except Exception as exc:  # torch missing or broken: ModelError from import_torch
        problem = str(exc)
    if problem:
        log.warning("matting, foreground and compose stay on the CPU: %s", problem)
        return None
    return resolve_device(name)


def _upload(array: np.ndarray, device):
    """A host array on ``device``; the decoder's read-only arrays are only read, never written."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finish_on_device(
    device, rgb: np.ndarray, source_alpha: np.ndarray | None, work_prob: np.ndarray, refiner,
    background: tuple[int, int, int] | None, shadow: compose_stage.Shadow | None, crop: bool, crop_margin: int | str,
    timings: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int] | None]:
    """Trimap, guided matting, foreground and compose of one photo on ``device`` (a ``torch.device``).

    ``rgb`` uint8 (H, W, 3); ``source_alpha`` float32 (H, W) in 0..1 or ``None``; ``work_prob``
    float32 (h', w') in 0..1 at the working size; ``refiner`` a
    :class:`~bgclear.stages.matte.GuidedRefiner` (its parameters are used). Returns host arrays
    (alpha float32 (H, W), foreground uint8 (H, W, 3), trimap uint8 (H, W), pixels uint8
    (h, w, 4|3), crop box or ``None``) as the numpy stages in ``Session.finish`` do; adds the
    seconds of each stage to ``timings`` (downloads count in ``compose``).
    """
    import torch

    from . import compose as device_compose
    from . import foreground, guided
    from . import trimap as device_trimap

    h, w = rgb.shape[:2]
    with torch.inference_mode():
        t = time.perf_counter()
        small = working_trimap(work_prob, (w, h))
        photo = _upload(rgb, device).permute(2, 0, 1)
        trimap = device_trimap.full_trimap(_upload(small, device), (w, h))
        coarse = device_trimap.upsample_probability(_upload(work_prob, device), (w, h))
        rgb255 = photo.float()
        _sync(device)
        timings["trimap"] = timings.get("trimap", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        alpha = guided.refine(rgb255, trimap, coarse, refiner.radius_fraction, refiner.eps, refiner.working_side)
        del coarse
        if source_alpha is not None:  # pixels the file already marked transparent stay transparent
            alpha = alpha * _upload(source_alpha, device)
        _sync(device)
        timings["matte"] = time.perf_counter() - t
        t = time.perf_counter()
        fg = foreground.estimate_foreground(rgb255, alpha)
        del rgb255
        _sync(device)
        timings["foreground"] = time.perf_counter() - t
        t = time.perf_counter()
        pixels = crop_box = None
        if not crop and (shadow is None or shadow.opacity <= 0):
            made = device_compose.rgba(fg, alpha) if background is None else device_compose.flatten(fg, alpha, background)
            pixels = made.cpu().numpy()
        alpha_host = alpha.cpu().numpy()
        fg_host = fg.permute(1, 2, 0).contiguous().cpu().numpy()
        trimap_host = trimap.cpu().numpy()
    if pixels is None:
        pixels, crop_box = compose_stage.compose(fg_host, alpha_host, background, shadow, crop, crop_margin)
    timings["compose"] = time.perf_counter() - t
    return alpha_host, fg_host, trimap_host, pixels, crop_box
