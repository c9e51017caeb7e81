"""TinyViT-5M, MobileSAM's image encoder: (1, 3, 1024, 1024) normalised pixels -> (1, 256, 64, 64) features.

Written from the architecture of MobileSAM (Zhang et al. 2023; TinyViT, Wu et al. 2022): a
convolutional stem and MBConv stage, three stages of windowed attention with a depth-wise
convolution between attention and MLP, and SAM's neck. Parameter names follow the published
checkpoint so it loads strictly; the ImageNet classification head the checkpoint also carries is
not part of this module (the loader checks and drops it).

Only the 1024x1024 input SAM uses is supported: stage resolutions are fixed at construction,
as in the original, because window partitioning needs them.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d


class ConvBN(nn.Sequential):
    """Convolution without bias followed by batch norm (names ``c`` and ``bn``, as in the checkpoint)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, pad: int = 0, groups: int = 1):
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 convolutions: 1024 px -> 256 tokens a side."""

    def __init__(self, dim: int):
        super().__init__()
        self.seq = nn.Sequential(ConvBN(3, dim // 2, 3, 2, 1), nn.GELU(), ConvBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depth-wise, 1x1 project, residual, GELU."""

    def __init__(self, dim: int, expand: float = 4.0):
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Channel change and (except into the last stage) 2x downsampling; returns tokens (B, N, C).

    MobileSAM keeps the last stage at 64x64 (stride 1 into widths 320/448/576), so the
    neck sees a 64x64 map.
    """

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int):
        super().__init__()
        self.resolution = resolution
        stride = 1 if out_dim in (320, 448, 576) else 2
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.resolution
            x = x.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
        x = self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


def _offset_index(window: int) -> tuple[torch.Tensor, int]:
    """(N, N) index of each query/key pair's |dy|, |dx| offset class, and the number of classes."""
    points = list(itertools.product(range(window), range(window)))
    classes: dict[tuple[int, int], int] = {}
    idx = [classes.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(classes)) for a in points for b in points]
    return torch.tensor(idx, dtype=torch.long).view(len(points), len(points)), len(classes)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside one window, with a learned bias per head and offset."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        index, classes = _offset_index(window)
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, classes))
        self.register_buffer("bias_index", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=3)
        # explicit softmax: SDPA with a float mask takes a slower path on CPU (mask checks, copies)
        attn = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5 + self.attention_biases[:, self.bias_index]
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(nn.Module):
    """Windowed attention, a 3x3 depth-wise convolution over the token map, then an MLP."""

    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, window: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = WindowAttention(dim, heads, window)
        self.local_conv = ConvBN(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, n, c = x.shape
        ws = self.window
        if h == ws and w == ws:
            return self.attn(x)
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, pad_r, 0, pad_b))
        nh, nw = (h + pad_b) // ws, (w + pad_r) // ws
        x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
        x = self.attn(x)
        x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, h + pad_b, w + pad_r, c)
        return x[:, :h, :w].reshape(b, n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, n, c = x.shape
        x = x + self._attend(x)
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).view(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class Mlp(nn.Module):
    """Pre-norm two-layer MLP with GELU."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class Stage(nn.Module):
    """``blocks`` then an optional ``downsample`` (a :class:`PatchMerging`)."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """MobileSAM's encoder. Defaults are TinyViT-5M as MobileSAM configures it.

    ``forward``: float32 (B, 3, img_size, img_size), SAM-normalised and zero-padded ->
    float32 (B, 256, img_size/16, img_size/16).
    """

    def __init__(
        self,
        img_size: int = 1024,
        dims: tuple[int, ...] = (64, 128, 160, 320),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        heads: tuple[int, ...] = (2, 4, 5, 10),
        windows: tuple[int, ...] = (7, 7, 14, 7),
        out_chans: int = 256,
    ):
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(dims[0])
        side = img_size // 4
        self.layers = nn.ModuleList()
        for i, dim in enumerate(dims):
            # the last stage keeps the previous stage's resolution (stride-1 merging into it)
            res = side // 2 ** (i - 1 if i == len(dims) - 1 else i)
            last = i == len(dims) - 1
            down = None if last else PatchMerging((res, res), dim, dims[i + 1])
            if i == 0:
                blocks: list[nn.Module] = [MBConv(dim) for _ in range(depths[i])]
            else:
                blocks = [TinyViTBlock(dim, (res, res), heads[i], windows[i]) for _ in range(depths[i])]
            self.layers.append(Stage(blocks, down))
        self.out_side = side // 2 ** (len(dims) - 2)
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], out_chans, 1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        x = x.view(b, self.out_side, self.out_side, c).permute(0, 3, 1, 2)
        return self.neck(x)
