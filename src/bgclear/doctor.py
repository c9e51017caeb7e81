"""``bgclear doctor``: what this install can run, as a JSON-ready dict. Imports torch only if present."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

from .engines import EngineOptions, available, choose
from .engines.cpu import cpu_name, native_bf16, native_int8
from .errors import ModelError


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_section(requested: str) -> dict:
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install raising something else
        return {"installed": False, "error": str(exc), "chosen_device": "cpu (onnxruntime only)",
                "hint": "pip install 'bgclear[torch]' for the inspyrenet and vitmatte backends"}
    from .engines.torch import cuda_problem, describe, resolve_device

    info = {
        "installed": True,
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": False,
        "cuda_problem": None,
        "devices": [],
        "threads": torch.get_num_threads(),
    }
    problem = cuda_problem()
    info["cuda_problem"] = problem
    if problem is None:
        info["cuda_available"] = True
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["devices"].append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                                    "capability": f"{p.major}.{p.minor}", "fp16": True,
                                    "bf16": bool(torch.cuda.is_bf16_supported()) if i == 0 else None})
    try:
        info["chosen_device"] = describe(resolve_device(requested))
    except ModelError as exc:
        info["chosen_device"] = None
        info["device_error"] = str(exc)
    return info


def _models() -> list[dict]:
    from .models.registry import all_models
    from .models.store import model_path

    rows = []
    try:
        models = all_models()
    except ModelError as exc:
        return [{"error": str(exc)}]
    for spec in models.values():
        try:
            path, installed = str(model_path(spec, verify=False)), True
        except ModelError:
            path, installed = None, False
        rows.append({"name": spec.name, "kind": spec.kind, "backend": spec.backend, "installed": installed,
                     "path": path, "pinned_sha256": bool(spec.sha256),
                     "needs_torch": spec.backend in ("inspyrenet", "vitmatte")})
    return rows


def _engines_section(options: EngineOptions) -> dict:
    from .models.int8 import quantized_model
    from .models.registry import DEFAULT_SEGMENTER, get_model

    # The default segmenter's int8 version (its manifest only: the doctor never hashes model files).
    int8 = quantized_model(get_model(DEFAULT_SEGMENTER), verify=False) is not None
    info: dict = {"cpu": cpu_name(), "native_bf16": native_bf16(), "native_int8": native_int8(),
                  "installed": available(), "default_model_int8": int8,
                  "requested": {"engine": options.engine, "precision": options.precision, "device": options.device}}
    try:
        engine, precision, device = choose(options, int8=int8)
        info["chosen"] = {"engine": engine, "precision": precision, "device": device}
    except ModelError as exc:
        info["chosen"], info["error"] = None, str(exc)
    return info


def doctor_report(device: str = "auto", engine: str = "auto", precision: str = "auto") -> dict:
    """Python, packages, inference engines and the one ``engine``/``precision`` choose, onnxruntime
    providers, torch/CUDA, the device ``device`` resolves to, and models.

    Never raises for a missing optional package; never hashes model files (fast).
    """
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {d: _version(d) for d in ("bgclear", "numpy", "onnxruntime", "torch", "transformers",
                                              "safetensors", "opencv-python-headless", "pymatting", "openvino")},
    }
    report["engines"] = _engines_section(EngineOptions(engine=engine, precision=precision, device=device))
    try:
        import onnxruntime as ort

        report["onnxruntime_providers"] = ort.get_available_providers()
    except Exception as exc:
        report["onnxruntime_providers"] = f"unavailable: {exc}"
    report["torch"] = _torch_section(device)
    report["requested_device"] = device
    report["models"] = _models()
    return report
