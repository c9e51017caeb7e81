"""Inference engines: one small interface (:class:`~bgclear.engines.base.Engine`)
over onnxruntime and OpenVINO, chosen per session.

``auto`` picks OpenVINO in bf16 on a CPU that computes bf16 natively (AMX or
AVX512-BF16: 1.6x onnxruntime f32 on an AMD EPYC, more with AMX) and onnxruntime
everywhere else (OpenVINO f32 measured 1.05x: not worth a second runtime) and on
CUDA; ``auto`` precision is bf16 on OpenVINO where native, f32 elsewhere
(docs/BENCHMARKS.md).
An engine that fails to load in ``auto`` mode falls back to onnxruntime with
one warning; asking for an engine that is not installed is an error saying how
to install it. Engines are imported only when used.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelError
from .base import ENGINE_CHOICES, PRECISION_CHOICES, Engine, EngineOptions
from .cpu import native_bf16
from .device import parse_device

log = logging.getLogger("bgclear")

#: name -> module under bgclear.engines; each module has ``version()``, ``INSTALL_HINT`` and one engine class.
ENGINES = {"onnxruntime": ("onnxruntime", "OnnxRuntimeEngine"), "openvino": ("openvino", "OpenVinoEngine")}
#: Engines that can run bf16 on a CPU.
BF16_ENGINES = ("openvino",)

__all__ = ["ENGINE_CHOICES", "PRECISION_CHOICES", "Engine", "EngineOptions", "available", "choose", "load_onnx", "parse_device"]


def _module(name: str):
    return importlib.import_module(f"{__name__}.{ENGINES[name][0]}")


def available() -> dict[str, str | None]:
    """Every engine and its installed version (``None``: not installed). Imports each runtime."""
    return {name: _module(name).version() for name in ENGINES}


def installed(name: str) -> bool:
    """Whether an engine's runtime package is installed, without importing it (a CLI start
    would otherwise pay for importing the runtime it does not use)."""
    return importlib.util.find_spec(ENGINES[name][0]) is not None


def choose(options: EngineOptions) -> tuple[str, str, str]:
    """(engine, precision, device) that ``options`` resolve to on this machine, before loading anything."""
    device = parse_device(options.device)
    if options.engine not in ENGINE_CHOICES:
        raise ModelError(f"unknown engine {options.engine!r}; use {', '.join(ENGINE_CHOICES)}")
    if options.precision not in PRECISION_CHOICES:
        raise ModelError(f"unknown precision {options.precision!r}; use {', '.join(PRECISION_CHOICES)}")
    if device == "auto":
        device = "cuda" if options.engine != "openvino" and _ort_has_cuda() else "cpu"
    engine, precision = options.engine, options.precision
    if engine == "auto":
        # OpenVINO only where it is clearly faster: in bf16 on a CPU that computes it natively
        # (1.6x onnxruntime here; f32 alone was 1.05x, under the 1.3x worth a second runtime).
        wants_bf16 = precision == "bf16" or (precision == "auto" and native_bf16())
        engine = "openvino" if wants_bf16 and device == "cpu" and installed("openvino") else "onnxruntime"
    elif not installed(engine):
        raise ModelError(f"--engine {engine} is not installed; {_module(engine).INSTALL_HINT}")
    if precision == "auto":
        precision = "bf16" if engine in BF16_ENGINES and native_bf16() else "f32"
    elif precision == "bf16" and engine not in BF16_ENGINES:
        raise ModelError(f"{engine} runs these models in f32 only, not bf16; "
                         "use --engine openvino for bf16, or --precision f32")
    return engine, precision, device


def _ort_has_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def load_onnx(path: Path, options: EngineOptions, what: str = "model", outputs: Sequence[str | int] | None = None) -> Engine:
    """Load an ONNX file with the engine ``options`` choose; see the module docstring for fall-backs.

    ``outputs``: the outputs the caller reads (names or positions); ``None``: all of them.
    """
    engine, precision, device = choose(options)
    module_name, class_name = ENGINES[engine]
    try:
        cls = getattr(_module(engine), class_name)
        return cls(path, precision, device, options.threads, outputs)
    except ModelError:
        raise
    except Exception as exc:  # a runtime that cannot load this file on this machine
        if engine == "onnxruntime":
            raise ModelError(f"{what}: onnxruntime could not load {path}: {_first_line(exc)}") from None
        log.warning("%s: %s could not load it (%s: %s); using onnxruntime f32 instead",
                    what, engine, type(exc).__name__, _first_line(exc))
        from .onnxruntime import OnnxRuntimeEngine

        try:
            return OnnxRuntimeEngine(path, "f32", device, options.threads, outputs)
        except ModelError:
            raise
        except Exception as exc2:
            raise ModelError(f"{what}: neither {engine} nor onnxruntime could load {path}: {_first_line(exc2)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
