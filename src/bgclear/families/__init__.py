"""Model families that run on PyTorch: InSPyReNet segmentation and ViTMatte refinement.

A family turns a registry entry (``ModelSpec.backend``) into a segmenter or a refiner;
:mod:`bgclear.backends` finds it in one table and imports it only when such a model is
asked for, so the default install stays light. The networks live in :mod:`bgclear.networks`,
device and precision handling for PyTorch in :mod:`bgclear.engines.torch`; weights are
always local files the user supplies (:mod:`bgclear.models.local`), nothing is downloaded.

- :mod:`.inspyrenet`: the InSPyReNet segmenter (``base``, ``fast`` and ``pyramid`` modes).
- :mod:`.vitmatte`: windowed ViTMatte refinement of the trimap's unknown band.
"""
