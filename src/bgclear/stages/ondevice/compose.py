"""Compose on a torch device: transparent RGBA or a colour background, as :mod:`bgclear.stages.compose`.

A shadow or a crop is not done here: :func:`bgclear.stages.ondevice.finish_on_device`
hands those to the numpy compose on the downloaded foreground and alpha.
"""

from __future__ import annotations

import torch


def rgba(foreground: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Straight RGBA uint8 (H, W, 4) from ``foreground`` uint8 (3, H, W) and ``alpha`` float32 (H, W) in 0..1;
    invisible pixels carry no colour (as the numpy compose: half the PNG, half its encoding time)."""
    alpha8 = torch.round(alpha * 255.0).clamp_(0, 255).to(torch.uint8)  # cv2.convertScaleAbs: half to even
    visible = foreground * (alpha8 > 0)
    return torch.cat([visible, alpha8[None]]).permute(1, 2, 0).contiguous()


def flatten(foreground: torch.Tensor, alpha: torch.Tensor, background: tuple[int, int, int]) -> torch.Tensor:
    """Foreground over a solid colour: uint8 (H, W, 3) from uint8 (3, H, W) and float32 (H, W) in 0..1,
    rounded as cv2.blendLinear (weights a and 1 - a, divided by their sum + 1e-5)."""
    colour = torch.tensor(background, dtype=torch.float32, device=foreground.device)[:, None, None]
    rest = 1.0 - alpha
    mixed = (foreground.float() * alpha + colour * rest) / (alpha + rest + 1e-5)
    return torch.round(mixed).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()
