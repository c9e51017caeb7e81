"""Inference engines: one small interface (:class:`~bgclear.engines.base.Engine`)
over onnxruntime and OpenVINO, chosen per session.

``auto`` picks OpenVINO in bf16 on a CPU that computes bf16 natively (AMX or
AVX512-BF16: 2.3x onnxruntime f32 for ISNet on an AMD EPYC, more with AMX) and
onnxruntime f32 everywhere else (OpenVINO f32 measured 1.2x: not worth a second
runtime) and on CUDA. ``--precision int8`` (asked for, never automatic) runs a
network's int8 quantisation, made at pull time (:mod:`bgclear.models.int8`), on
OpenVINO (docs/BENCHMARKS.md).
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
#: Engines that can run bf16 on a CPU, and int8 networks.
BF16_ENGINES = ("openvino",)
INT8_ENGINES = ("openvino",)

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


def choose(options: EngineOptions, int8: bool = False) -> tuple[str, str, str]:
    """(engine, precision, device) that ``options`` resolve to on this machine, before loading anything.

    ``int8``: whether the model has an int8 quantisation at hand (needed for ``precision="int8"``).
    """
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
        # (2.3x onnxruntime here; f32 alone was 1.2x, under the 1.3x worth a second runtime), or int8.
        fast = precision in ("bf16", "int8") or (precision == "auto" and native_bf16())
        engine = "openvino" if fast and device == "cpu" and installed("openvino") else "onnxruntime"
    elif not installed(engine):
        raise ModelError(f"--engine {engine} is not installed; {_module(engine).INSTALL_HINT}")
    if precision == "auto":
        precision = "bf16" if engine in BF16_ENGINES and native_bf16() else "f32"
    elif precision == "bf16" and engine not in BF16_ENGINES:
        raise ModelError(f"{engine} runs these models in f32 only, not bf16; "
                         "use --engine openvino for bf16, or --precision f32")
    elif precision == "int8" and engine not in INT8_ENGINES:
        raise ModelError(f"{engine} does not run the int8 networks; use --engine openvino for int8, or --precision f32")
    elif precision == "int8" and not int8:
        raise ModelError("this model has no int8 version here: it is made by 'bgclear models pull NAME' where "
                         "NNCF is installed (pip install 'bgclear[int8]'); or use --precision bf16 / f32")
    return engine, precision, device


def _ort_has_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def load_onnx(path: Path, options: EngineOptions, what: str = "model", outputs: Sequence[str | int] | None = None,
              int8: Path | None = None) -> Engine:
    """Load an ONNX file with the engine ``options`` choose; see the module docstring for fall-backs.

    ``outputs``: the outputs the caller reads (names or positions); ``None``: all of them.
    ``int8``: the network's int8 quantisation (OpenVINO IR), used where int8 is chosen.
    """
    try:
        engine, precision, device = choose(options, int8=int8 is not None)
    except ModelError as exc:
        raise ModelError(f"{what}: {exc}") from None
    module_name, class_name = ENGINES[engine]
    try:
        cls = getattr(_module(engine), class_name)
        return cls(int8 if precision == "int8" else path, precision, device, options.threads, outputs)
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
