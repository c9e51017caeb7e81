"""Building segmenters and refiners from their names.

A registry entry's ``backend`` names its model family; the family's loader is
looked up in one table and imported only when asked for, so the default
install stays light (the PyTorch families import torch only then).
"""

from __future__ import annotations

import importlib

from .engines import EngineOptions
from .errors import ModelError
from .stages.matte import REFINERS, Refiner
from .models.registry import ModelSpec, all_models, get_model
from .stages.segment import Segmenter

DEFAULT_REFINER = "guided"

#: model family (``ModelSpec.backend``) -> "module:class" of its segmenter, built as ``cls(spec, options)``.
SEGMENTER_FAMILIES = {
    "onnx": "bgclear.stages.segment:OnnxSegmenter",
    "inspyrenet": "bgclear.families.inspyrenet:InSPyReNetSegmenter",
}
#: model family -> "module:function" building a learned refiner as ``fn(spec, options)``.
REFINER_FAMILIES = {
    "vitmatte": "bgclear.families.vitmatte:refiner_from_spec",
}


#: model family -> "module:function" that loads a local checkpoint once to prove it is one, as
#: ``fn(path)`` (``bgclear models add`` calls it through :func:`check_weights`).
WEIGHT_CHECKS = {
    "inspyrenet": "bgclear.networks.inspyrenet.checkpoints:load_inspyrenet",
    "vitmatte": "bgclear.families.vitmatte:load_vitmatte",
}


def check_weights(family: str, path) -> None:
    """Load ``path`` with its family's own loader; raises :class:`ModelError` naming what is wrong."""
    if family not in WEIGHT_CHECKS:
        raise ModelError(f"no weight check for model family {family!r}")
    _load(WEIGHT_CHECKS[family])(path)


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_segmenter(name_or_spec: str | ModelSpec, device: str = "cpu", options: EngineOptions | None = None) -> Segmenter:
    """The segmenter of a registry entry; ``options`` choose engine, precision and threads (device: ``options.device``
    when given, else ``device``)."""
    spec = get_model(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    options = options or EngineOptions(device=device)
    if spec.kind != "segmenter":
        raise ModelError(f"model {spec.name!r} is a {spec.kind}, not a segmenter")
    if spec.backend not in SEGMENTER_FAMILIES:
        raise ModelError(f"model {spec.name!r} needs backend {spec.backend!r}, which this install does not provide")
    return _load(SEGMENTER_FAMILIES[spec.backend])(spec, options)


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


def make_refiner(name: str, device: str = "cpu", options: EngineOptions | None = None) -> Refiner:
    if name == "none":
        return NoRefiner()
    if name in REFINERS:
        return REFINERS[name]()
    spec = all_models().get(name)
    if spec is not None and spec.backend in REFINER_FAMILIES:
        return _load(REFINER_FAMILIES[spec.backend])(spec, options or EngineOptions(device=device))
    raise ModelError(f"unknown refiner {name!r}; available: {', '.join(refiner_names())}")
