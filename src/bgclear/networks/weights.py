"""Reading PyTorch checkpoints strictly, for every network: tensors on the CPU, wrapper keys and
prefixes removed, and a check that names every missing, unexpected or misshapen tensor."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from ..errors import ModelError

_PREFIXES = ("module.", "model.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, on CPU, with wrapper keys and prefixes removed.

    Raises :class:`ModelError` when the file cannot be read as a checkpoint.
    Never unpickles arbitrary objects (``weights_only=True``).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        elif _is_torchscript(path):
            sd = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except ModelError:
        raise
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"cannot read checkpoint {path}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors")
    return strip_prefixes(dict(sd))


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or n.startswith("code/") or "/code/" in n for n in zf.namelist())


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes shared by every key (``module.``, ``model.``), repeatedly."""
    changed = True
    while changed and sd:
        changed = False
        for p in _PREFIXES:
            if all(k.startswith(p) for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items()}
                changed = True
    return sd


def check_tensors(expected: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], source: str, what: str) -> None:
    """:class:`ModelError` unless ``sd`` has exactly the names of ``expected``, with the same shapes."""
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{source}: {len(missing)} missing and {len(unexpected)} unexpected tensors for {what} "
            f"— e.g. missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    bad = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if v.shape != sd[k].shape]
    if bad:
        raise ModelError(f"{source}: tensor shapes differ from the architecture, e.g. {bad[:3]}")
