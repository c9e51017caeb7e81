"""SAM's prompt encoder and mask decoder (a two-way transformer), as MobileSAM uses them.

Written from the architecture of Segment Anything (Kirillov et al. 2023). Parameter names follow
the published checkpoint. Prompts are encoded in the traceable form SAM's own ONNX export uses
(labels select embeddings arithmetically), so the same code runs in PyTorch and exports to ONNX:

- points: float32 (B, N, 2) (x, y) in the 1024x1024 input frame, labels float32 (B, N):
  1 keep, 0 drop, 2 / 3 the top-left / bottom-right box corners, -1 padding ("not a point");
- mask: float32 (B, 1, 256, 256) logits, used where ``has_mask`` (B,) is 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of (x, y) in 0..1: sin and cos of a fixed Gaussian projection."""

    def __init__(self, feats: int = 128):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) in 0..1 -> (..., 2 * feats)."""
        proj = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """Encoding of every cell centre of an (h, w) grid: (2 * feats, h, w)."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        coords = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode(coords).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Points and box corners -> sparse tokens (B, N, 256); a mask -> dense map (B, 256, 64, 64)."""

    def __init__(self, dim: int = 256, grid: int = 64, input_size: int = 1024, mask_chans: int = 16):
        super().__init__()
        self.grid_size = grid
        self.input_size = input_size
        self.pe_layer = PositionEmbeddingRandom(dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))  # drop, keep, 2 corners
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_chans // 4, 2, stride=2),
            LayerNorm2d(mask_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_chans // 4, mask_chans, 2, stride=2),
            LayerNorm2d(mask_chans),
            nn.GELU(),
            nn.Conv2d(mask_chans, dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    def dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding's cells: (1, 256, 64, 64)."""
        return self.pe_layer.grid(self.grid_size, self.grid_size)[None]

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """coords (B, N, 2) input-frame pixels, labels (B, N) -> (B, N, 256)."""
        pe = self.pe_layer.encode((coords + 0.5) / self.input_size)  # +0.5: pixel centres
        labels = labels[..., None]
        out = pe * (labels != -1) + self.not_a_point_embed.weight * (labels == -1)
        for i, table in enumerate(self.point_embeddings):
            out = out + table.weight * (labels == i)
        return out

    def embed_mask(self, mask: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
        """mask (B, 1, 256, 256) logits, has_mask (B,) 0/1 -> (B, 256, 64, 64)."""
        has = has_mask.view(-1, 1, 1, 1)
        return has * self.mask_downscaling(mask) + (1 - has) * self.no_mask_embed.weight.view(1, -1, 1, 1)

    def no_mask(self, batch: int = 1) -> torch.Tensor:
        """The dense embedding used when no mask is given: (batch, 256, 64, 64)."""
        return self.no_mask_embed.weight.view(1, -1, 1, 1).expand(batch, -1, self.grid_size, self.grid_size)


class Attention(nn.Module):
    """Multi-head attention whose projections may shrink the width by ``downsample``."""

    def __init__(self, dim: int, heads: int, downsample: int = 1):
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self._split(self.q_proj(q)), self._split(self.k_proj(k)),
                                             self._split(self.v_proj(v)))
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Tokens attend to themselves and to the image, an MLP on tokens, then the image attends to tokens."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_pe: bool):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, 2)
        self.skip_first_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_pe:  # the first block's queries are the prompt embeddings themselves
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int = 2, dim: int = 256, heads: int = 8, mlp_dim: int = 2048):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor):
        """image, image_pe (B, C, H, W); tokens (B, N, C) -> (tokens (B, N, C), image (B, HW, C))."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        queries = queries + self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries), keys


class MLP(nn.Module):
    """Linear layers with ReLU between them (``layers.0`` .. ``layers.{n-1}``)."""

    def __init__(self, din: int, hidden: int, dout: int, depth: int):
        super().__init__()
        dims = [din] + [hidden] * (depth - 1) + [dout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MaskDecoder(nn.Module):
    """Image features + prompt tokens -> 4 mask logits at 256x256 (single, then 3 alternatives) and their IoU."""

    def __init__(self, dim: int = 256, masks: int = 4):
        super().__init__()
        self.transformer = TwoWayTransformer(dim=dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(masks, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(masks))
        self.iou_prediction_head = MLP(dim, 256, masks, 3)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        """image (1, 256, 64, 64), image_pe (1, 256, 64, 64), sparse (B, N, 256), dense (B, 256, 64, 64)
        -> (mask logits (B, 4, 256, 256), predicted IoU (B, 4))."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)
        src = image.expand(b, -1, -1, -1) + dense
        _, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe.expand(b, -1, -1, -1), tokens)
        n = len(self.output_hypernetworks_mlps)
        up = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        _, cu, hu, wu = up.shape
        masks = (hyper @ up.view(b, cu, hu * wu)).view(b, n, hu, wu)
        return masks, self.iou_prediction_head(hs[:, 0])
