"""Shared fixtures: synthetic images with known alpha, and a real small-model session."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "cat.png"


def soft_disc(width: int, height: int, radius_frac: float = 0.3, soft: float = 6.0) -> np.ndarray:
    """float32 (H, W) alpha of a disc with a linear soft edge ``soft`` px wide."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot(xx - width / 2, yy - height / 2)
    radius = radius_frac * min(width, height)
    return np.clip((radius - r) / soft + 0.5, 0, 1).astype(np.float32)


def composite(alpha: np.ndarray, fg=(220, 40, 30), bg=(30, 60, 200), noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, 3) image = alpha*fg + (1-alpha)*bg (+ optional noise)."""
    f = np.asarray(fg, np.float32)
    b = np.asarray(bg, np.float32)
    img = alpha[..., None] * f + (1 - alpha[..., None]) * b
    if noise:
        img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def encode_pil(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def small_session():
    """A real session with the 4.6 MB U2NetP model (installed by .ci/run)."""
    from bgclear import Session

    return Session(segmenter="u2netp")


@pytest.fixture(scope="session")
def disc_photo() -> np.ndarray:
    """A 640x480 red disc on a blue, slightly noisy background."""
    return composite(soft_disc(640, 480), noise=3.0)
