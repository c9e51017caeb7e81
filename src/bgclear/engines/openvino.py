"""OpenVINO: ONNX models on the CPU, in f32 or (where the CPU has it natively) bf16; and int8
networks quantised at pull time (:mod:`bgclear.models.int8`, OpenVINO IR).

Compiling a network takes seconds, so compiled blobs are cached on disk under a
folder keyed by OpenVINO's version and the CPU (OpenVINO's own cache key adds
the model's contents and the compile options). A cache that cannot be written
only costs the compile time.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import queue
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import select_outputs
from .cpu import cpu_flags, cpu_name

log = logging.getLogger("bgclear")

INSTALL_HINT = "pip install openvino (or reinstall bgclear, which depends on it on x86-64 and ARM64)"


def import_openvino():
    """``openvino``, imported without its usage telemetry (:func:`import_without_telemetry`)."""
    return import_without_telemetry("openvino")


def import_without_telemetry(name: str):
    """Module ``name`` (``openvino``, ``nncf``), imported while ``openvino_telemetry`` is unimportable.

    Importing openvino imports its model-conversion tools, which count every import
    in ~/intel/stats and send usage events unless a consent file in the home folder
    says no; NNCF sends an event for each quantisation the same way. bgclear promises
    not to write or send anything it is not asked to, so the first import is made
    while ``openvino_telemetry`` is blocked: both then use their built-in stubs. The
    block is lifted right after, so an application's own later import of
    ``openvino_telemetry`` works as before.
    """
    if name in sys.modules or "openvino_telemetry" in sys.modules:
        return importlib.import_module(name)
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        if sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]


def version() -> str | None:
    try:
        openvino = import_openvino()
    except ImportError:
        return None
    return openvino.get_version().split("-")[0]


def compile_cache_dir() -> Path:
    """<model cache>/compiled/openvino-<version>/<cpu key>: blobs from another version or CPU are never read."""
    from ..models.registry import cache_dir

    cpu_key = hashlib.sha256((cpu_name() + " ".join(sorted(cpu_flags()))).encode()).hexdigest()[:12]
    return cache_dir() / "compiled" / f"openvino-{version()}" / cpu_key


def read_network(core, path: Path, outputs: Sequence[str | int] | None = None):
    """The network in ``path`` (ONNX or OpenVINO IR) as an OpenVINO model holding only ``outputs``
    (:func:`~bgclear.engines.base.select_outputs`; ``None``: all). The compiler then drops the layers
    that feed nothing else (ISNet's side outputs), which is faster than computing and copying them."""
    ov = import_openvino()
    model = core.read_model(str(path))
    names = [port.get_any_name() for port in model.outputs]
    wanted = select_outputs(names, outputs)
    if wanted == names:
        return model
    results = [model.get_results()[names.index(name)] for name in wanted]
    return ov.Model(results, model.get_parameters(), model.get_friendly_name())


class OpenVinoEngine:
    """A compiled model and a pool of infer requests, so concurrent ``run`` calls never share one."""

    name = "openvino"

    def __init__(self, path: Path, precision: str, device: str, threads: int | None,
                 outputs: Sequence[str | int] | None = None) -> None:
        ov = import_openvino()
        if device not in ("cpu", "auto"):
            raise ModelError(f"the OpenVINO engine runs on the CPU; for --device {device} use --engine onnxruntime")
        core = ov.Core()
        # An int8 network's quantised layers run in int8 whatever the hint; the hint sets the rest (f32:
        # bf16 there measured no faster).
        hint = "f32" if precision == "int8" else precision
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        cache = compile_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(cache)
        except OSError as exc:
            log.info("OpenVINO compile cache off (%s): each start compiles again", exc)
        self._compiled = core.compile_model(read_network(core, path, outputs), "CPU", config)
        self.precision = precision
        self.device = "cpu"
        self._inputs = [port.get_any_name() for port in self._compiled.inputs]
        self.outputs = [port.get_any_name() for port in self._compiled.outputs]
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._dispatch_lock = threading.Lock()

    def input_names(self) -> list[str]:
        return list(self._inputs)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            with self._dispatch_lock:
                request = self._compiled.create_infer_request()
        try:
            # Handing the inputs to a request goes through OpenVINO's Python data dispatcher, which
            # deadlocked now and then with two threads in it at once (both stuck in get_tensor /
            # Tensor.data: ~1 run in 12 of `bgclear remove DIR -j 2`). So that step is taken one
            # thread at a time, and so is reading the outputs back; the inference itself runs in parallel.
            with self._dispatch_lock:
                request.start_async(inputs)
            request.wait()
            with self._dispatch_lock:
                # Copies: the request's output buffers are reused by its next inference.
                return [np.array(request.get_tensor(port).data) for port in self._compiled.outputs]
        finally:
            self._requests.put(request)
