"""Swin Transformer backbone with the parameter layout of InSPyReNet checkpoints.

InSPyReNet (research repository and transparent-background) uses the original
Swin code with per-stage output norms (``norm0``..``norm3``), so its state dicts
name tensors ``backbone.patch_embed.proj``, ``backbone.layers.{i}.blocks.{j}.attn.qkv``,
``backbone.layers.{i}.downsample.reduction`` and so on. This module reproduces
that layout and arithmetic (including the -100 additive mask of shifted windows
and zero-padding of partial windows) so those weights load strictly and give the
same features.

Input: float (B, 3, H, W), any H, W. Output: a tuple of five (B, C, h, w) maps:
the patch embedding at 1/4 and the four stage outputs at 1/4, 1/8, 1/16, 1/32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``ws`` -> (B * nW, ws * ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_merge(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws * ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) int64 index into the (2ws-1)^2 relative-bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    def __init__(self, dim: int, ws: int, heads: int) -> None:
        super().__init__()
        self.ws, self.heads = ws, heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        # Persistent because the checkpoints carry it; strict loading expects it.
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x`` (B*nW, N, C); ``mask`` (nW, N, N) additive or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.heads).permute(2, 0, 1)  # (heads, N, N)
        if mask is not None:
            # Windows are batch-major: view them as (B, nW, ...) so the (nW, 1, N, N) mask broadcasts.
            nw = mask.shape[0]
            q, k, v = (t.reshape(bw // nw, nw, self.heads, n, -1) for t in (q, k, v))
            bias = bias[None] + mask[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype)).reshape(bw, self.heads, n, -1)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ws: int, shift: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        ws = self.ws
        y = self.norm1(x).view(b, h, w, c)
        # Partial windows are zero-padded after the norm, as the checkpoints were trained.
        y = F.pad(y, (0, 0, 0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws))
        hp, wp = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = self.attn(window_partition(y, ws), mask if self.shift else None)
        y = window_merge(y, ws, hp, wp)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y[:, :h, :w].reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        # Channel order (even row, even col), (odd, even), (even, odd), (odd, odd) is part of the weights.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


def shift_mask(hp: int, wp: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask: -100 between tokens from different regions of a shifted window."""
    label = torch.zeros((1, hp, wp, 1), device=device)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, (hs, wsl) in enumerate((hs, wsl) for hs in cuts for wsl in cuts):
        label[:, hs, wsl] = i
    m = window_partition(label, ws).squeeze(-1)
    diff = m[:, None, :] - m[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0, device=device), torch.tensor(0.0, device=device))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, ws: int, downsample: bool) -> None:
        super().__init__()
        self.ws = ws
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, ws, 0 if i % 2 == 0 else ws // 2) for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        ws = self.ws
        mask = shift_mask(-(-h // ws) * ws, -(-w // ws) * ws, ws, ws // 2, x.device)
        for blk in self.blocks:
            x = blk(x, h, w, mask)
        return x, (self.downsample(x, h, w) if self.downsample is not None else None)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        x = self.proj(F.pad(x, (0, (p - x.shape[3] % p) % p, 0, (p - x.shape[2] % p) % p)))
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    """Swin backbone. Swin-B (InSPyReNet): ``embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window=12``."""

    def __init__(self, embed_dim: int = 128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window: int = 12) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(embed_dim)
        dims = [embed_dim * 2**i for i in range(len(depths))]
        self.num_features = dims
        self.layers = nn.ModuleList(
            SwinStage(dims[i], depths[i], heads[i], window, downsample=i < len(depths) - 1) for i in range(len(depths))
        )
        for i, d in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(d))

    @property
    def out_channels(self) -> list[int]:
        return [self.num_features[0], *self.num_features]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.patch_embed(x)
        h, w = x.shape[2:]
        outs = [x.contiguous()]
        x = x.flatten(2).transpose(1, 2)
        for i, stage in enumerate(self.layers):
            y, down = stage(x, h, w)
            y = getattr(self, f"norm{i}")(y)
            outs.append(y.view(-1, h, w, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            if down is not None:
                x, h, w = down, (h + 1) // 2, (w + 1) // 2
        return tuple(outs)


def swin_b() -> SwinTransformer:
    return SwinTransformer(128, (2, 2, 18, 2), (4, 8, 16, 32), 12)
