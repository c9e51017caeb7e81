"""The one parser of ``--device`` for every engine and stage."""

from __future__ import annotations

from ..errors import ModelError

DEVICE_HELP = "auto, cpu, cuda or cuda:N (gpu = cuda); a GPU that is not usable is an error."


def parse_device(device: str | None) -> str:
    """Normalise a device name: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    ``None`` means ``"auto"``; ``"gpu"`` is an alias of ``"cuda"``. Anything
    else raises :class:`ModelError` naming the accepted forms. Whether the GPU
    is usable is the engine's question, not the parser's.
    """
    name = (device or "auto").strip().lower()
    if name == "gpu":
        name = "cuda"
    if name in ("auto", "cpu", "cuda"):
        return name
    head, _, index = name.partition(":")
    if head in ("cuda", "gpu") and index.isdigit():
        return f"cuda:{int(index)}"
    raise ModelError(f"unknown device {device!r}; use {DEVICE_HELP.split(';')[0]}")
