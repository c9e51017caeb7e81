"""What every inference engine offers: run a loaded network on numpy arrays.

An engine wraps one runtime (onnxruntime, OpenVINO, PyTorch) around one model
file. Everything model-specific (input size, normalisation, output scaling)
comes from the model's registry entry and is handled once, in
:mod:`bgclear.segment`, so a new engine is only the code that loads a file and
runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..errors import ModelError

#: Engines a user may ask for; ``auto`` picks the fastest one installed (see :func:`bgclear.engines.choose`).
ENGINE_CHOICES = ("auto", "onnxruntime", "openvino")
#: ``auto``: bf16 where the CPU computes it natively, f32 elsewhere. ``int8`` is only ever asked for.
PRECISION_CHOICES = ("auto", "f32", "bf16", "int8")


@dataclass(frozen=True)
class EngineOptions:
    """How to run a model: the runtime, its numeric precision, device and thread count.

    ``threads`` caps the intra-op threads of this model (``None``: the runtime's
    default, one per core); the server and the batch workers pass it explicitly.
    """

    engine: str = "auto"
    precision: str = "auto"
    device: str = "cpu"
    threads: int | None = None


class Engine(Protocol):
    """A loaded network. ``run`` is thread-safe.

    An engine loaded with ``outputs`` (names, or positions in the file's output order)
    returns only those, in that order, and need not compute the rest: ISNet's file has
    twelve outputs (side outputs and deep features) of which the product reads one.
    """

    name: str  # "onnxruntime", "openvino"
    precision: str  # "f32", "bf16", "int8", "f16"
    device: str  # "cpu", "cuda:0"
    outputs: list[str]  # output names, in the order ``run`` returns them

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Named float32 input arrays -> the outputs asked for at load time (all, in the file's order, by default)."""
        ...

    def input_names(self) -> list[str]:
        """The network's input names, in the file's order."""
        ...


def select_outputs(names: Sequence[str], wanted: Sequence[str | int] | None) -> list[str]:
    """The output names an engine returns: ``wanted`` (names or positions in ``names``) or all.

    Raises :class:`~bgclear.errors.ModelError` naming the outputs the file has when one is missing.
    """
    if wanted is None:
        return list(names)
    chosen = []
    for item in wanted:
        if isinstance(item, int):
            if not -len(names) <= item < len(names):
                raise ModelError(f"the model has {len(names)} outputs; there is no output {item}")
            chosen.append(names[item])
        elif item in names:
            chosen.append(item)
        else:
            raise ModelError(f"the model has no output {item!r}; its outputs are {', '.join(names)}")
    return chosen
