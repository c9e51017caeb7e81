"""The result of one removal, and the only code that turns it into file bytes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .stages import compose as compose_stage
from .io.encode import encode, normalise_format
from .io.files import write_atomic


@dataclass
class Cutout:
    """The result of one removal.

    ``alpha``: float32 (H, W) in 0..1 at the source's full resolution.
    ``foreground``: uint8 (H, W, 3), estimated foreground colours (decontaminated).
    ``pixels``: uint8 output after compose: (h, w, 4) RGBA, or (h, w, 3) RGB when a
    background colour was chosen; cropped when ``crop_box`` is set.
    ``probability``: float32 (h, w), the segmenter's raw output at its own resolution.
    ``trimap``: uint8 (H, W) in {0, 128, 255}.
    """

    alpha: np.ndarray
    foreground: np.ndarray
    pixels: np.ndarray
    probability: np.ndarray
    trimap: np.ndarray
    crop_box: tuple[int, int, int, int] | None = None
    background: tuple[int, int, int] | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    source_format: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the source."""
        return self.alpha.shape[1], self.alpha.shape[0]

    @property
    def rgba(self) -> np.ndarray:
        """uint8 (H, W, 4): estimated foreground with alpha, uncropped, no background."""
        return np.dstack([self.foreground, self.alpha8])

    @property
    def alpha8(self) -> np.ndarray:
        """uint8 (H, W) alpha."""
        return np.clip(self.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)

    @property
    def image(self) -> Image.Image:
        """The composed output as a PIL image (RGBA, or RGB on a solid background)."""
        return Image.fromarray(self.pixels)

    @property
    def foreground_bbox(self) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) of the subject in source pixels."""
        return compose_stage.subject_box(self.alpha)

    def output_pixels(self, mask: bool = False) -> np.ndarray:
        """uint8 pixels of the output: the composed image, or with ``mask`` the alpha matte alone
        ((h, w), cropped like the image)."""
        if not mask:
            return self.pixels
        alpha = self.alpha8
        if self.crop_box:
            left, top, right, bottom = self.crop_box
            alpha = alpha[top:bottom, left:right]
        return alpha

    def encode(self, fmt: str = "png", quality: int = 92, mask: bool = False) -> bytes:
        """File bytes of the output (or of the alpha matte alone with ``mask=True``)."""
        return self.render(fmt, quality, mask)[0]

    def render(self, fmt: str = "png", quality: int = 92, mask: bool = False,
               max_side: int | None = None) -> tuple[bytes, tuple[int, int]]:
        """(file bytes, (width, height)) of the output; ``max_side`` scales it down to fit a preview
        (Lanczos, on premultiplied colours so edges pick up no hidden colour). The one place a
        result becomes bytes, for the library, the CLI and both HTTP APIs."""
        t0 = time.perf_counter()
        pixels = self.output_pixels(mask)
        if not mask and normalise_format(fmt) == "jpg" and pixels.shape[-1] == 4:
            pixels = self._flatten_white()  # keeps whatever compose added (shadow, crop)
        if max_side and max(pixels.shape[:2]) > max_side:
            image = Image.fromarray(pixels)
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # Pillow premultiplies RGBA here
            pixels = np.asarray(image)
        data = encode(pixels, fmt, quality=quality)
        self.timings["encode"] = time.perf_counter() - t0
        return data, (pixels.shape[1], pixels.shape[0])

    def _flatten_white(self) -> np.ndarray:
        rgba = self.pixels.astype(np.float32)
        a = rgba[..., 3:4] / 255.0
        return np.clip(rgba[..., :3] * a + 255.0 * (1 - a) + 0.5, 0, 255).astype(np.uint8)

    def save(self, path: str | os.PathLike, fmt: str | None = None, quality: int = 92, mask: bool = False) -> Path:
        """Write atomically: a temporary file in the same folder, renamed when complete."""
        path = Path(path)
        fmt = fmt or (path.suffix.lstrip(".") or "png")
        data = self.encode(fmt, quality=quality, mask=mask)
        write_atomic(path, data)
        return path
