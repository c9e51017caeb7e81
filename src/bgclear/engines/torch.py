"""Choosing where the PyTorch backends run.

``auto`` picks CUDA when torch sees a usable GPU, else the CPU. Asking for
``cuda`` (or ``cuda:N``) when no usable GPU is there is an error, never a
silent fall-back: the user asked for speed they would not get.
"""

from __future__ import annotations

import contextlib
import logging
import os

from ..errors import ModelError

log = logging.getLogger("bgclear")

TORCH_HINT = "install the PyTorch extra: pip install 'bgclear[torch]'"


def import_torch():
    """``torch``, or :class:`ModelError` saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise ModelError(f"this backend needs PyTorch, which is not importable ({exc}); {TORCH_HINT}") from None
    return torch


def device_and_threads(options) -> tuple[str, int | None]:
    """(device, threads) from an :class:`bgclear.engines.EngineOptions`, a device name or ``None``."""
    if options is None or isinstance(options, str):
        return options or "auto", None
    return options.device, options.threads


def set_threads(threads: int | None) -> None:
    """Cap PyTorch's intra-op threads (process-wide in PyTorch; ``None`` leaves its default)."""
    if threads:
        import_torch().set_num_threads(int(threads))


def cuda_problem() -> str | None:
    """Why CUDA cannot be used (a sentence), or None when it can."""
    torch = import_torch()
    if torch.version.cuda is None:
        return f"this PyTorch build ({torch.__version__}) has no CUDA support"
    try:
        if not torch.cuda.is_available():
            return f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU or driver"
    except Exception as exc:  # driver errors surface here
        return f"CUDA initialisation failed: {exc}"
    return None


def resolve_device(device: str | None = "auto"):
    """``"auto"``/``None``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> ``torch.device``.

    Raises :class:`ModelError` for a GPU that cannot be used or an unknown name.
    """
    from .device import parse_device

    torch = import_torch()
    name = parse_device(device)
    if name == "auto":
        chosen = torch.device("cuda" if cuda_problem() is None else "cpu")
    elif name == "cpu":
        chosen = torch.device("cpu")
    else:
        problem = cuda_problem()
        if problem:
            raise ModelError(f"device {device!r} was requested but {problem}; use --device cpu or --device auto")
        chosen = torch.device(name)
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ModelError(f"device {device!r} was requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return chosen


def describe(device) -> str:
    """Human-readable name of a torch device, e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
    torch = import_torch()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def default_half(device) -> bool:
    """Reduced-precision autocast by default on CUDA; ``BGCLEAR_FP16=0`` turns it off.

    benchmarks/gpu_check.py compares both networks against fp32 on the CPU.
    """
    return device.type == "cuda" and os.environ.get("BGCLEAR_FP16", "1") != "0"


def half_dtype(device):
    """bfloat16 where the GPU has it, else float16.

    bfloat16 keeps float32's exponent range: on an H100, InSPyReNet (Swin-B)
    under float16 autocast overflowed to NaN, while bfloat16 stayed within the
    tolerance of the fp32 reference (benchmarks/gpu_check.py, docs/BENCHMARKS.md).
    """
    torch = import_torch()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device, half: bool, dtype=None):
    """Reduced-precision autocast on CUDA when ``half`` (``dtype`` or :func:`half_dtype`);
    a no-op context otherwise (the CPU stays fp32)."""
    torch = import_torch()
    if half and device.type == "cuda":
        return torch.autocast("cuda", dtype=dtype or half_dtype(device))
    return contextlib.nullcontext()


def run_guarded(owner, fn, what: str):
    """``fn()`` under ``owner.half`` autocast on ``owner.device``; if reduced precision
    gives non-finite values, warn, switch ``owner.half`` off for good and rerun in fp32.

    Overflow depends on the weights and the input, so a model that overflowed once
    will do so again: staying in fp32 afterwards avoids paying for two passes.
    """
    torch = import_torch()
    with autocast(owner.device, owner.half):
        out = fn()
    if owner.half and not bool(torch.isfinite(out).all()):
        log.warning("%s gave non-finite values under %s autocast on %s; running it in fp32 from now on",
                    what, str(half_dtype(owner.device)).replace("torch.", ""), describe(owner.device))
        owner.half = False
        out = fn()
    return out
