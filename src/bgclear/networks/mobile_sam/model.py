"""MobileSAM as one module with two entry points, and its strict checkpoint loader.

``encode``: float32 (1, 3, 1024, 1024) normalised, zero-padded pixels -> (1, 256, 64, 64) features
(once per image). ``decode``: features + prompts -> 4 mask logits (1, 4, 256, 256) over the padded
1024 frame and their predicted IoU (1, 4) (once per click). Both are plain tensor functions, so
each exports to ONNX as it is (see :class:`EncoderGraph` / :class:`DecoderGraph`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...errors import ModelError
from ..weights import check_tensors, read_state_dict
from . import INPUT_SIZE
from .decoder import MaskDecoder, PromptEncoder
from .tiny_vit import TinyViT

#: Tensors the checkpoint carries that SAM never uses: TinyViT's ImageNet classifier. Checked and dropped.
CLASSIFIER_HEAD = {
    "image_encoder.norm_head.weight": (320,),
    "image_encoder.norm_head.bias": (320,),
    "image_encoder.head.weight": (1000, 320),
    "image_encoder.head.bias": (1000,),
}


class MobileSam(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = TinyViT(INPUT_SIZE)
        self.prompt_encoder = PromptEncoder(input_size=INPUT_SIZE, grid=INPUT_SIZE // 16)
        self.mask_decoder = MaskDecoder()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(x)

    def decode(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        mask: torch.Tensor | None = None,
        has_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """features (1, 256, 64, 64); coords (1, N, 2) input-frame pixels; labels (1, N) (see
        :mod:`.decoder`); mask (1, 1, 256, 256) logits with has_mask (1,), or None ->
        (logits (1, 4, 256, 256), IoU (1, 4)); index 0 is the single-mask answer, 1..3 the alternatives."""
        pe = self.prompt_encoder
        sparse = pe.embed_points(coords, labels)
        dense = pe.no_mask(coords.shape[0]) if mask is None else pe.embed_mask(mask, has_mask)
        return self.mask_decoder(features, pe.dense_pe(), sparse, dense)


class EncoderGraph(nn.Module):
    """The encoder alone, for export."""

    def __init__(self, model: MobileSam):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode(image)


class DecoderGraph(nn.Module):
    """The prompt encoder and mask decoder, for export: every input always present."""

    def __init__(self, model: MobileSam):
        super().__init__()
        self.model = model

    def forward(self, features, coords, labels, mask, has_mask):
        return self.model.decode(features, coords, labels, mask, has_mask)


def check_state_dict(sd: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The tensors of ``sd`` MobileSAM uses, after checking every name and shape.

    Raises :class:`ModelError` naming what is wrong: another SAM variant, missing or unexpected
    tensors, or shapes that differ.
    """
    if any(k.startswith("image_encoder.blocks.") for k in sd):
        raise ModelError(f"{source} is a SAM ViT checkpoint (image_encoder.blocks.*), not MobileSAM's TinyViT")
    if not any(k.startswith("image_encoder.") for k in sd) or "mask_decoder.iou_token.weight" not in sd:
        raise ModelError(f"{source} is not a MobileSAM checkpoint (no image_encoder.* / mask_decoder.* tensors)")
    expected = MobileSam().state_dict()
    for name, shape in CLASSIFIER_HEAD.items():
        if name in sd and tuple(sd[name].shape) != shape:
            raise ModelError(f"{source}: {name} has shape {tuple(sd[name].shape)}, expected {shape}")
    used = {k: v for k, v in sd.items() if k not in CLASSIFIER_HEAD}
    check_tensors(expected, used, source, "MobileSAM")
    return used


def load_mobile_sam(path: str | Path) -> MobileSam:
    """Build MobileSAM and restore every tensor of the checkpoint at ``path`` (strict); eval mode, CPU.

    The file is read with ``weights_only=True`` (never unpickles code).
    """
    sd = check_state_dict(read_state_dict(path), str(path))
    model = MobileSam()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)
    return model.eval()
