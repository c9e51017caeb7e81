"""Stage 4 — matting: refine alpha inside the trimap's unknown band.

A refiner takes the image, the trimap and the coarse probability at full
resolution and returns alpha at full resolution. Known pixels keep the trimap's
value; only unknown pixels are estimated, tile by tile, so memory and time
follow the band, never the whole photo.

Refiners here:
- ``guided`` (default): colour guided filter of the coarse probability (He et
  al. 2013); coefficients at a working size, applied to every native pixel of
  the band, so alpha follows the full-resolution photo's own edges.
- ``colour-line``: alpha from each pixel's colour between the local foreground
  and background colours.
- ``closed-form``: closed-form matting (Levin et al. 2008, via pymatting)
  restricted to the band, at a bounded working scale, then guided back to native
  resolution. The slower baseline.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..trimap import FOREGROUND, UNKNOWN


class Refiner(Protocol):
    name: str

    def refine(self, rgb: np.ndarray, trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """``rgb`` uint8 (H, W, 3), ``trimap`` uint8 (H, W) in {0, 128, 255},
        ``coarse`` float32 (H, W) in 0..1 -> alpha float32 (H, W) in 0..1.
        Pixels outside the unknown band must equal the trimap (0 or 1)."""
        ...


def known_alpha(trimap: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Alpha that is 0/1 on known pixels and the coarse value on unknown ones (float32 (H, W))."""
    alpha = (trimap == FOREGROUND).astype(np.float32)
    np.copyto(alpha, coarse, where=trimap == UNKNOWN)
    return alpha


from .closed_form import ClosedFormRefiner  # noqa: E402
from .colour_line import ColourLineRefiner  # noqa: E402
from .guided import GuidedRefiner, apply_coefficients, guided_coefficients, guided_filter  # noqa: E402

REFINERS = {"guided": GuidedRefiner, "closed-form": ClosedFormRefiner, "colour-line": ColourLineRefiner}

__all__ = [
    "REFINERS",
    "ClosedFormRefiner",
    "ColourLineRefiner",
    "GuidedRefiner",
    "Refiner",
    "apply_coefficients",
    "guided_coefficients",
    "guided_filter",
    "known_alpha",
]
