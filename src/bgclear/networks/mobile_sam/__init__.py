"""MobileSAM (Zhang et al. 2023; Segment Anything, Kirillov et al. 2023), our own PyTorch code.

- :mod:`.tiny_vit`: the TinyViT-5M image encoder.
- :mod:`.decoder`: SAM's prompt encoder and two-way-transformer mask decoder.
- :mod:`.model`: :class:`~.model.MobileSam` (``encode`` / ``decode``) and
  :func:`~.model.load_mobile_sam`, the strict loader.
- :mod:`.export`: the ONNX export made at pull time, and finding it again (no PyTorch needed for that).

Weights: ``mobile_sam.pt`` (Apache-2.0 upstream), fetched by ``bgclear models pull mobilesam``.
:mod:`bgclear.promptable` turns this into a prompt-answering segmenter. This file imports
nothing, so the runtime can use the exported graphs without PyTorch installed.
"""

#: SAM's input normalisation, on 0..255 RGB values.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
#: The encoder's square input side and the side of the decoder's low-resolution masks.
INPUT_SIZE = 1024
MASK_SIZE = 256
