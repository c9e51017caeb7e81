"""Building segmenters and refiners from their names.

The ONNX segmenters and the classical refiners are always available; learned
backends that need PyTorch are imported only when asked for, so the default
install stays light.
"""

from __future__ import annotations

from .errors import ModelError
from .matte import REFINERS, Refiner
from .models.registry import ModelSpec, all_models, get_model
from .segment import OnnxSegmenter, Segmenter

DEFAULT_REFINER = "guided"


def make_segmenter(name_or_spec: str | ModelSpec, device: str = "cpu") -> Segmenter:
    spec = get_model(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if spec.kind != "segmenter":
        raise ModelError(f"model {spec.name!r} is a {spec.kind}, not a segmenter")
    if spec.backend == "onnx":
        return OnnxSegmenter(spec, providers=onnx_providers(device))
    if spec.backend == "inspyrenet":
        from .torch_backends.segmenter import InSPyReNetSegmenter  # imports torch only now

        return InSPyReNetSegmenter(spec, device=device)
    raise ModelError(f"model {spec.name!r} needs backend {spec.backend!r}, which this install does not provide")


def onnx_providers(device: str) -> list[str]:
    """onnxruntime providers for ``device`` (auto, cpu, cuda, cuda:N); a GPU that is not usable is an error."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ModelError(
                f"--device {device} asked for a GPU, but this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device cpu"
            )
        index = device.partition(":")[2] or "0"
        return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]  # type: ignore[list-item]
    raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def refiner_names() -> list[str]:
    try:
        learned = [n for n, s in all_models().items() if s.kind == "refiner"]
    except ModelError:  # a damaged local registry must not break listing the built-in ones
        learned = []
    return sorted(REFINERS) + ["none"] + sorted(learned)


class NoRefiner:
    """Keeps the segmenter's probability as alpha: the raw output, for comparison."""

    name = "none"

    def refine(self, rgb, trimap, coarse):  # noqa: D102 - protocol in matte.Refiner
        return coarse


def make_refiner(name: str, device: str = "cpu") -> Refiner:
    if name == "none":
        return NoRefiner()
    if name in REFINERS:
        return REFINERS[name]()
    spec = all_models().get(name)
    if spec is not None and spec.backend == "vitmatte":
        from .torch_backends.vitmatte import refiner_from_spec  # imports torch only now

        return refiner_from_spec(spec, device=device)
    raise ModelError(f"unknown refiner {name!r}; available: {', '.join(refiner_names())}")
