"""onnxruntime: every ONNX model on the CPU (f32) or, with onnxruntime-gpu, on CUDA."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import select_outputs

log = logging.getLogger("bgclear")

INSTALL_HINT = "pip install onnxruntime (or onnxruntime-gpu for --device cuda)"


def version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def providers(device: str) -> list:
    """onnxruntime providers for a parsed device; a GPU that is not usable is an error."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise ModelError(
            f"--device {device} asked for a GPU, but this onnxruntime has no CUDA provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device cpu"
        )
    index = device.partition(":")[2] or "0"
    return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]


class OnnxRuntimeEngine:
    """One ``InferenceSession``; onnxruntime's ``run`` is thread-safe."""

    name = "onnxruntime"

    def __init__(self, path: Path, precision: str, device: str, threads: int | None,
                 outputs: Sequence[str | int] | None = None) -> None:
        import onnxruntime as ort

        if precision != "f32":
            raise ModelError(f"onnxruntime runs these models in f32 only, not {precision}; "
                             "use --engine openvino for bf16, or --precision f32")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # Arena growth is what makes long-running servers balloon: keep it off so
        # buffers are returned after each run.
        opts.enable_cpu_mem_arena = False
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers(device))
        provider = self._session.get_providers()[0]
        self.device = "cpu" if provider == "CPUExecutionProvider" else (device if device != "auto" else "cuda")
        self.precision = "f32"
        self.outputs = select_outputs([o.name for o in self._session.get_outputs()], outputs)

    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(self.outputs, inputs)
