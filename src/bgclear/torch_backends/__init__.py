"""Learned backends that run on PyTorch: InSPyReNet segmentation and ViTMatte refinement.

Optional (``pip install 'bgclear[torch]'``). Nothing here is imported by the
default ONNX pipeline; :mod:`bgclear.backends` imports these modules only when
such a model is asked for. Weights are always local files the user supplies;
nothing is downloaded.

- :mod:`.swin`, :mod:`.res2net`, :mod:`.inspyrenet`: the InSPyReNet network.
- :mod:`.checkpoints`: reading ``latest.pth`` / ``ckpt_base.pth`` / ``ckpt_fast.pth``.
- :mod:`.segmenter`: the segmenter (``base``, ``fast`` and ``pyramid`` modes).
- :mod:`.vitmatte`: windowed ViTMatte refinement of the trimap's unknown band.
- :mod:`.weights`: :func:`add_local_model` (``bgclear models add``).
- :mod:`.device`: device choice (``auto``, ``cpu``, ``cuda[:N]``).

Only :mod:`.weights` is importable without torch.
"""

from .weights import add_local_model

__all__ = ["add_local_model"]
