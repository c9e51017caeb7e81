"""Reading InSPyReNet checkpoints and building the matching network.

Accepted files (all checked with strict loading: no missing, no unexpected tensors):

- a plain ``state_dict`` saved with ``torch.save`` — the research repository's
  ``latest.pth`` and transparent-background's ``ckpt_base.pth`` / ``ckpt_fast.pth``;
- the same wrapped as ``{"state_dict": ...}`` / ``{"model": ...}`` or with the
  ``module.`` prefix ``DataParallel`` adds;
- a ``.safetensors`` file with the same tensor names;
- a TorchScript file (transparent-background's ``--jit`` cache): its tensors are read, the code is not run.

The architecture (Swin or Res2Net backbone, its widths and depths, the decoder
depth) is read from the tensor shapes, so one loader serves every variant.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ...errors import ModelError
from ..weights import check_tensors, read_state_dict
from .model import InSPyReNet
from .res2net import Res2Net
from .swin import SwinTransformer

def infer_architecture(sd: dict[str, torch.Tensor]) -> dict:
    """Backbone type and sizes from tensor shapes.

    Returns ``{"backbone": "swin", "embed_dim", "depths", "heads", "window", "depth"}``
    or ``{"backbone": "res2net", "layers", "depth"}``.
    """
    if "context1.branch0.conv.weight" not in sd:
        raise ModelError("not an InSPyReNet checkpoint (no context1.branch0.conv.weight)")
    depth = sd["context1.branch0.conv.weight"].shape[0]
    if "backbone.patch_embed.proj.weight" in sd:
        embed = sd["backbone.patch_embed.proj.weight"].shape[0]
        block = re.compile(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.")
        counts: dict[int, int] = {}
        for k in sd:
            m = block.match(k)
            if m:
                i, j = int(m[1]), int(m[2])
                counts[i] = max(counts.get(i, 0), j + 1)
        depths = tuple(counts[i] for i in range(len(counts)))
        heads, window = [], None
        for i in range(len(depths)):
            table = sd[f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"]
            heads.append(table.shape[1])
            window = (int(round(table.shape[0] ** 0.5)) + 1) // 2
        return {"backbone": "swin", "embed_dim": embed, "depths": depths, "heads": tuple(heads),
                "window": window, "depth": depth}
    if "backbone.layer1.0.conv1.weight" in sd:
        layers = tuple(
            1 + max(int(m[1]) for k in sd if (m := re.match(rf"backbone\.layer{i}\.(\d+)\.", k)))
            for i in range(1, 5)
        )
        return {"backbone": "res2net", "layers": layers, "depth": depth}
    raise ModelError("InSPyReNet checkpoint with an unknown backbone (neither Swin nor Res2Net tensors)")


def build_inspyrenet(arch: dict, base_size=(384, 384)) -> InSPyReNet:
    """An uninitialised network for ``arch`` (from :func:`infer_architecture`)."""
    if arch["backbone"] == "swin":
        backbone = SwinTransformer(arch["embed_dim"], arch["depths"], arch["heads"], arch["window"])
    else:
        backbone = Res2Net(arch["layers"])
    return InSPyReNet(backbone, backbone.out_channels, arch["depth"], base_size)


def load_inspyrenet(path: str | Path, base_size=(1024, 1024)) -> tuple[InSPyReNet, dict]:
    """Build the network a checkpoint describes and restore every tensor (strict).

    Returns ``(model in eval mode on CPU, arch)``. Raises :class:`ModelError` on
    missing or unexpected tensors, naming a few of them.
    """
    sd = read_state_dict(path)
    arch = infer_architecture(sd)
    model = build_inspyrenet(arch, base_size)
    check_tensors(model.state_dict(), sd, str(path), f"an InSPyReNet ({arch['backbone']})")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)
    return model.eval(), arch
