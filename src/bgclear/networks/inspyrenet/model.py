"""InSPyReNet (Kim et al., "Revisiting Image Pyramid Structure for High Resolution
Salient Object Detection", ACCV 2022): decoder, inverse saliency pyramid and
the high-resolution pyramid blending of two passes.

Module and parameter names follow the published checkpoints (research
repository ``latest.pth``; transparent-background ``ckpt_base.pth`` /
``ckpt_fast.pth``) so they load with ``strict=True``. Some reshapes below look
odd (a ``view`` that reinterprets channels as positions); they are kept because
the weights were trained with them.

``base_size`` (h, w) is a hyper-parameter of the weights, not of the input: the
SICA attention pools its context at ``base_size / 2**stage``. 384 for the
low-resolution ("fast"/LR) checkpoints, 1024 for ``ckpt_base.pth``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _bilinear(x: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


class ConvBlock(nn.Module):
    """conv (no bias, 'same' padding) -> optional BatchNorm -> optional ReLU; names ``conv``, ``bn``."""

    def __init__(self, cin: int, cout: int, kernel, dilation: int = 1, bn: bool = True, relu: bool = False) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        self.conv = nn.Conv2d(cin, cout, (kh, kw), 1, pad, dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x) if self.relu is not None else x


class AxialSelfAttention(nn.Module):
    """Self-attention over groups of ``axis`` consecutive values (``mode`` 'h' -> H, 'w' -> W).

    The (B, C, H, W) map is viewed, not permuted, as (B, C*HW/axis, axis): for
    'w' that is attention along rows; for 'h' it is what the checkpoints learnt.
    """

    def __init__(self, channels: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.query_conv = ConvBlock(channels, channels // 8, 1)
        self.key_conv = ConvBlock(channels, channels // 8, 1)
        self.value_conv = ConvBlock(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        axis = h if self.mode == "h" else w
        q = self.query_conv(x).reshape(b, -1, axis).transpose(1, 2)
        k = self.key_conv(x).reshape(b, -1, axis)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)
        v = self.value_conv(x).reshape(b, -1, axis)
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class PAAKernel(nn.Module):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv0 = ConvBlock(cin, cout, 1)
        self.conv1 = ConvBlock(cout, cout, (1, k))
        self.conv2 = ConvBlock(cout, cout, (k, 1))
        self.conv3 = ConvBlock(cout, cout, 3, dilation=k)
        self.Hattn = AxialSelfAttention(cout, "h")
        self.Wattn = AxialSelfAttention(cout, "w")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(self.conv0(x)))
        return self.conv3(self.Hattn(x) + self.Wattn(x))


class PAAEncoder(nn.Module):
    """Pyramidal attention context module applied to one backbone level (``PAA_e``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(True)
        self.branch0 = ConvBlock(cin, cout, 1)
        self.branch1 = PAAKernel(cin, cout, 3)
        self.branch2 = PAAKernel(cin, cout, 5)
        self.branch3 = PAAKernel(cin, cout, 7)
        self.conv_cat = ConvBlock(4 * cout, cout, 3)
        self.conv_res = ConvBlock(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)
        return self.relu(self.conv_cat(cat) + self.conv_res(x))


class PAADecoder(nn.Module):
    """Fuses levels 3-5 into the coarsest saliency map d3 (``PAA_d``)."""

    def __init__(self, cin: int, depth: int = 64) -> None:
        super().__init__()
        self.conv1 = ConvBlock(cin, depth, 3)
        self.conv2 = ConvBlock(depth, depth, 3)
        self.conv3 = ConvBlock(depth, depth, 3)
        self.conv4 = ConvBlock(depth, depth, 3)
        self.conv5 = ConvBlock(depth, 1, 3, bn=False)
        self.Hattn = AxialSelfAttention(depth, "h")
        self.Wattn = AxialSelfAttention(depth, "w")

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        size = feats[0].shape[-2:]
        fx = torch.cat([_bilinear(f, size, True) if i else f for i, f in enumerate(feats)][::-1], 1)
        fx = self.conv1(fx)
        fx = self.conv4(self.conv3(self.conv2(self.Hattn(fx) + self.Wattn(fx))))
        return fx, self.conv5(fx)


class SICA(nn.Module):
    """Scale-invariant context attention: refines features with fg/bg/uncertain context vectors."""

    def __init__(self, cin: int, depth: int, stage_size: tuple[int, int] | None, lmap_in: bool = False) -> None:
        super().__init__()
        self.depth, self.lmap_in, self.stage_size = depth, lmap_in, stage_size
        self.ctx = 5 if lmap_in else 3
        self.conv_query = nn.Sequential(ConvBlock(cin, depth, 3, relu=True), ConvBlock(depth, depth, 3, relu=True))
        self.conv_key = nn.Sequential(ConvBlock(cin, depth, 1, relu=True), ConvBlock(depth, depth, 1, relu=True))
        self.conv_value = nn.Sequential(ConvBlock(cin, depth, 1, relu=True), ConvBlock(depth, depth, 1, relu=True))
        self.conv_out1 = ConvBlock(depth, depth, 3, relu=True)
        self.conv_out2 = ConvBlock(cin + depth, depth, 3, relu=True)
        self.conv_out3 = ConvBlock(depth, depth, 3, relu=True)
        self.conv_out4 = ConvBlock(depth, 1, 1)
        self.threshold = nn.Parameter(torch.tensor([0.5]))
        if lmap_in:
            self.lthreshold = nn.Parameter(torch.tensor([0.5]))

    def forward(self, x: torch.Tensor, smap: torch.Tensor, lmap: torch.Tensor | None = None):
        b, _, h, w = x.shape
        s = torch.sigmoid(_bilinear(smap, (h, w)))
        p = s - self.threshold
        prob = [p.clamp(0, 1), (-p).clamp(0, 1), self.threshold - p.abs()]  # fg, bg, uncertain
        if self.lmap_in:
            lp = torch.sigmoid(_bilinear(lmap, (h, w))) - self.lthreshold
            prob += [lp.clamp(0, 1), (-lp).clamp(0, 1)]
        prob = torch.cat(prob, 1)
        shape = self.stage_size or (h, w)
        n = shape[0] * shape[1]
        # (B, C, h', w') viewed as (B, h'w', C) without a permute: how the weights were trained.
        f = _bilinear(x, shape).reshape(b, n, -1)
        prob = _bilinear(prob, shape).reshape(b, self.ctx, n)
        context = torch.bmm(prob, f).permute(0, 2, 1).unsqueeze(3)  # (B, C, ctx, 1)
        query = self.conv_query(x).reshape(b, self.depth, -1).permute(0, 2, 1)
        key = self.conv_key(context).reshape(b, self.depth, -1)
        value = self.conv_value(context).reshape(b, self.depth, -1).permute(0, 2, 1)
        sim = torch.softmax(torch.bmm(query, key) * self.depth**-0.5, dim=-1)
        context = torch.bmm(sim, value).permute(0, 2, 1).reshape(b, -1, h, w)
        x = torch.cat([x, self.conv_out1(context)], 1)
        x = self.conv_out3(self.conv_out2(x))
        return x, self.conv_out4(x)


def gaussian_kernel(ksize: int = 7, sigma: float = 1.0) -> torch.Tensor:
    k = cv2.getGaussianKernel(ksize, sigma)
    return torch.tensor(np.outer(k, k), dtype=torch.float32)[None, None]


def pyramid_expand(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Laplacian-pyramid expand of (B, 1, h, w): zero-insert to (2h, 2w), blur with 4x the Gaussian."""
    b, c, h, w = x.shape
    up = x.new_zeros((b, c, 2 * h, 2 * w))
    up[..., ::2, ::2] = x
    r = kernel.shape[-1] // 2
    return F.conv2d(F.pad(up, (r, r, r, r), mode="reflect"), kernel.to(x) * 4)


def pyramid_reconstruct(coarse: torch.Tensor, laplacian: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """One level up the inverse saliency pyramid: expand(coarse) + laplacian (resized to match)."""
    up = pyramid_expand(coarse, kernel)
    if laplacian.shape[-2:] != up.shape[-2:]:
        laplacian = _bilinear(laplacian, up.shape[-2:], True)
    return up + laplacian


def _ellipse_runs(k: int) -> list[tuple[int, int]]:
    """(row offset, half-width) of each row of cv2's k x k ellipse; every row is one centred run."""
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    runs = []
    for i, row in enumerate(se):
        cols = np.flatnonzero(row)
        if cols.size:
            half = (cols[-1] - cols[0]) // 2
            assert cols[0] + half == k // 2 and cols.size == 2 * half + 1, "ellipse row is not a centred run"
            runs.append((i - k // 2, int(half)))
    return runs


def dilate(x: torch.Tensor, k: int) -> torch.Tensor:
    """Grey dilation of (B, 1, H, W) by a k x k ellipse, ignoring outside pixels.

    Decomposed into per-row horizontal max-pools (the ellipse is a stack of
    centred runs), so it costs k passes instead of k*k.
    """
    h = x.shape[-2]
    r = k // 2
    out = None
    for dy, half in _ellipse_runs(k):
        row = F.max_pool2d(x, (1, 2 * half + 1), 1, (0, half)) if half else x
        row = F.pad(row, (0, 0, r, r), value=float("-inf"))[..., r + dy : r + dy + h, :]
        out = row if out is None else torch.maximum(out, row)
    return out


def transition(x: torch.Tensor, k: int) -> torch.Tensor:
    """1 where the morphological gradient of sigmoid(x) over a k-ellipse exceeds 0.5, else 0."""
    s = torch.sigmoid(x)
    return ((dilate(s, k) + dilate(-s, k)) > 0.5).to(x.dtype)


class InSPyReNet(nn.Module):
    """``forward(x)`` -> saliency logits pyramid; see :meth:`predict` and :meth:`predict_blended`."""

    def __init__(self, backbone: nn.Module, in_channels: list[int], depth: int = 64, base_size=(384, 384)) -> None:
        super().__init__()
        self.backbone = backbone
        self.base_size = tuple(base_size)
        for i, c in enumerate(in_channels):
            self.add_module(f"context{i + 1}", PAAEncoder(c, depth))
        self.decoder = PAADecoder(depth * 3, depth)

        def stage(s: int) -> tuple[int, int]:
            return (self.base_size[0] // 2**s, self.base_size[1] // 2**s)

        self.attention0 = SICA(depth, depth, stage(0), lmap_in=True)
        self.attention1 = SICA(depth * 2, depth, stage(1), lmap_in=True)
        self.attention2 = SICA(depth * 2, depth, stage(2))
        # Not parameters: checkpoints carry no Gaussian kernel.
        self.register_buffer("pyramid_kernel", gaussian_kernel(7, 1.0), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``x`` (B, 3, H, W) normalised -> (saliency [d3, d2, d1, d0], laplacians [p2, p1, p0]), logits.

        d0 is at (H, W); d3 at 1/8 of it.
        """
        h, w = x.shape[-2:]
        x1, x2, x3, x4, x5 = self.backbone(x)
        x1, x2 = self.context1(x1), self.context2(x2)
        x3, x4, x5 = self.context3(x3), self.context4(x4), self.context5(x5)
        f3, d3 = self.decoder([x3, x4, x5])
        f3 = _bilinear(f3, (h // 4, w // 4))
        f2, p2 = self.attention2(torch.cat([x2, f3], 1), d3)
        d2 = pyramid_reconstruct(d3, p2, self.pyramid_kernel)
        x1, f2 = _bilinear(x1, (h // 2, w // 2)), _bilinear(f2, (h // 2, w // 2))
        f1, p1 = self.attention1(torch.cat([x1, f2], 1), d2, p2)
        d1 = pyramid_reconstruct(d2, p1, self.pyramid_kernel)
        _, p0 = self.attention0(_bilinear(f1, (h, w)), d1, p1)
        d0 = pyramid_reconstruct(d1, p0, self.pyramid_kernel)
        return [d3, d2, d1, d0], [p2, p1, p0]

    @staticmethod
    def to_probability(d0: torch.Tensor) -> torch.Tensor:
        """sigmoid, then stretched to 0..1 per call as the reference inference does."""
        p = torch.sigmoid(d0.float())
        return (p - p.min()) / (p.max() - p.min() + 1e-8)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: (B, 3, H, W) -> probability (B, 1, H, W)."""
        return self.to_probability(self(x)[0][-1])

    def predict_blended(self, x_hr: torch.Tensor, x_lr: torch.Tensor) -> torch.Tensor:
        """Pyramid blending (paper, Sec. 3.4): the LR pass fixes the global shape, the HR pass
        adds its Laplacian detail only near the LR edges (the transition band), level by level.

        ``x_hr`` (B, 3, H, W) the photo at high resolution, ``x_lr`` the same photo at
        ``base_size``. Returns probability (B, 1, H, W).
        """
        lr_d0 = self(x_lr)[0][-1]
        (hr_d3, _, _, _), (hr_p2, hr_p1, hr_p0) = self(x_hr)
        k = self.pyramid_kernel
        d = _bilinear(lr_d0, hr_d3.shape[-2:])
        for lap, ksize in ((hr_p2, 5), (hr_p1, 9), (hr_p0, 17)):
            band = _bilinear(transition(d, ksize), lap.shape[-2:])
            d = pyramid_reconstruct(d, band * lap, k)
        return self.to_probability(d)
