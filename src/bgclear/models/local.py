"""Where user-supplied checkpoints live and how they are checked and registered."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..errors import ModelError, ModelNotFoundError
from .registry import IMAGENET_MEAN, IMAGENET_STD, TORCH_MODELS, ModelSpec, save_user_model
from .store import model_path, sha256_file
from ..backends import check_weights
from ..engines.torch import import_torch

#: Registering the first name also registers the others with the same weights.
COMPANIONS = {"inspyrenet": ("inspyrenet-hr",)}
VITMATTE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def checkpoint_path(spec: ModelSpec) -> Path:
    """The weights file of ``spec`` (sha256-verified when the entry records one).

    For ViTMatte this is the weights file inside a transformers checkpoint folder.
    """
    try:
        return model_path(spec)
    except ModelNotFoundError:
        if spec.name in TORCH_MODELS and "path" not in spec.extra:
            what = "a ViTMatte checkpoint folder (config.json + model.safetensors)" if spec.backend == "vitmatte" \
                else f"an InSPyReNet checkpoint such as {spec.filename}"
            raise ModelNotFoundError(
                f"model {spec.name!r} needs weights you supply ({what}); register them with "
                f"'bgclear models add {spec.name} PATH'"
            ) from None
        raise


def vitmatte_weights(folder: Path) -> Path:
    """The weights file of a transformers ViTMatte folder; :class:`ModelError` when it is not one."""
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(f"{folder} is not a ViTMatte checkpoint folder (no config.json)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except ValueError as exc:
        raise ModelError(f"{config} is not valid JSON ({exc})") from None
    if model_type != "vitmatte":
        raise ModelError(f"{folder} holds a {model_type!r} model, not a ViTMatte one")
    for name in VITMATTE_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"{folder} has config.json but no {' or '.join(VITMATTE_WEIGHTS)}")


def guess_backend(path: Path) -> str:
    if path.is_dir() or path.name == "config.json":
        return "vitmatte"
    if path.suffix == ".onnx":
        return "onnx"
    return "inspyrenet"


def add_local_model(
    name: str,
    path: str | Path,
    backend: str | None = None,
    *,
    mode: str | None = None,
    base_size: int | None = None,
    window: int | None = None,
    overlap: int | None = None,
    description: str = "",
    check: bool = True,
) -> list[ModelSpec]:
    """Register checkpoint ``path`` under ``name`` in the local registry, after checking it loads.

    ``backend``: ``inspyrenet`` (a ``.pth``/``.safetensors`` state dict), ``vitmatte``
    (a transformers folder) or ``onnx``; guessed from ``path`` when omitted.
    ``mode`` (InSPyReNet): ``base``, ``fast`` or ``pyramid``; ``base_size`` the side
    the weights were trained at (1024 for ``ckpt_base.pth``, 384 for ``ckpt_fast.pth``
    and the research repository's LR checkpoints). ``window``/``overlap`` (ViTMatte):
    the square the network sees and its context margin, default 1024/128. Names of the placeholder
    entries (``inspyrenet``, ``inspyrenet-fast``, ``inspyrenet-hr``, ``vitmatte``)
    keep their settings unless overridden. Records the weights' sha256, so a file
    changed later is refused. Returns the registered entries (with companions).
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    template = TORCH_MODELS.get(name)
    backend = backend or (template.backend if template else guess_backend(path))
    if template and backend != template.backend:
        raise ModelError(f"{name!r} is the {template.backend} entry; choose another name for a {backend} model")
    if backend == "vitmatte":
        weights = vitmatte_weights(path.parent if path.name == "config.json" else path)
        spec = _entry(name, "refiner", "vitmatte", weights, template, description,
                      {"window": int(window or 1024), "overlap": int(overlap if overlap is not None else 128)})
        if spec.extra["window"] < 4 * spec.extra["overlap"]:
            raise ModelError(f"window {spec.extra['window']} must be at least 4x the overlap {spec.extra['overlap']}")
        if check:
            import_torch()
            check_weights("vitmatte", weights.parent)
    elif backend == "inspyrenet":
        if not path.is_file():
            raise ModelError(f"{path} is not a file; an InSPyReNet checkpoint is one .pth/.safetensors file")
        extra = dict(template.extra) if template else {"mode": "base"}
        if mode:
            extra["mode"] = mode
        if base_size:
            extra["base_size"] = int(base_size)
        extra.setdefault("base_size", 384 if extra["mode"] == "fast" else 1024)
        spec = _entry(name, "segmenter", "inspyrenet", path, template, description, extra)
        if check:
            import_torch()
            check_weights("inspyrenet", path)
    elif backend == "onnx":
        spec = _onnx_entry(name, path, description, check)
    else:
        raise ModelError(f"unknown backend {backend!r}; use inspyrenet, vitmatte or onnx")
    specs = [spec]
    for c in COMPANIONS.get(name, ()):
        extra = {**TORCH_MODELS[c].extra, "path": spec.extra["path"]}
        if base_size:  # weights trained at another size: the HR side follows (segmenter's default)
            extra["base_size"] = int(base_size)
            extra.pop("hr_side", None)
        specs.append(replace(TORCH_MODELS[c], extra=extra, sha256=spec.sha256, size_bytes=spec.size_bytes))
    for s in specs:
        save_user_model(s)
    return specs


def _entry(name, kind, backend, weights: Path, template, description, extra) -> ModelSpec:
    base = dict(template.extra) if template else {}
    base.update(extra)
    base["path"] = str(weights)
    return ModelSpec(
        name=name, kind=kind, filename=weights.name, sha256=sha256_file(weights), size_bytes=weights.stat().st_size,
        source=None, input_size=template.input_size if template else None,
        mean=template.mean if template else IMAGENET_MEAN, std=template.std if template else IMAGENET_STD,
        scale=255.0, output_name=None, output_norm="minmax" if kind == "segmenter" else "none",
        licence=template.licence if template else "user-supplied weights",
        description=description or (template.description if template else f"local {backend} checkpoint {weights}"),
        backend=backend, extra=base,
    )


def _onnx_entry(name: str, path: Path, description: str, check: bool) -> ModelSpec:
    """A user ONNX segmenter: fixed input size read from the graph, ImageNet normalisation, min-max output."""
    import onnxruntime as ort

    size = None
    if check:
        try:
            shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot open {path}: {exc}") from None
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
            size = (shape[3], shape[2])
    return ModelSpec(
        name=name, kind="segmenter", filename=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size,
        source=None, input_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=255.0, output_name=None,
        output_norm="minmax", licence="user-supplied weights", description=description or f"local ONNX model {path}",
        backend="onnx", extra={"path": str(path)},
    )
