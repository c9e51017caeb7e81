"""Res2Net-50 v1b (26w x 4s) backbone with the layout of InSPyReNet's Res2Net50 checkpoints.

Output: five (B, C, h, w) maps — the stem after max-pooling (64 ch, 1/4) and
``layer1``..``layer4`` (256, 512, 1024, 2048 ch at 1/4, 1/8, 1/16, 1/32).
Strides and dilations follow the research code's ``output_stride=32``
setting (dilations 1, 1, 2, 4 and a (1, 2, 4) multi-grid in layer4), which is
what its checkpoints were trained with.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Bottle2neck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, first: bool = False, base_width: int = 26, scale: int = 4) -> None:
        super().__init__()
        width = int(math.floor(planes * base_width / 64.0))
        self.width, self.scale, self.first = width, scale, first
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        if first:
            self.pool = nn.AvgPool2d(3, stride, 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, stride, dilation, dilation, bias=False) for _ in range(scale - 1)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        self.conv3 = nn.Conv2d(width * scale, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        splits = torch.split(out, self.width, 1)
        parts = []
        sp = splits[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            # Hierarchical residual split: each group also sees the previous group's output,
            # except in a stage's first block, where every group starts afresh.
            sp = splits[i] if (i == 0 or self.first) else sp + splits[i]
            sp = self.relu(bn(conv(sp)))
            parts.append(sp)
        last = splits[-1]
        parts.append(self.pool(last) if self.first else last)
        out = self.bn3(self.conv3(torch.cat(parts, 1)))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


class Res2Net(nn.Module):
    def __init__(self, layers=(3, 4, 6, 3), base_width: int = 26, scale: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._inplanes = 64
        strides, dilations, grids = (1, 2, 2, 2), (1, 1, 2, 4), (None, None, None, (1, 2, 4))
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            self.add_module(f"layer{i + 1}", self._make_layer(planes, n, strides[i], dilations[i], grids[i], base_width, scale))

    def _make_layer(self, planes, blocks, stride, dilation, grid, base_width, scale) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(self._inplanes, planes * 4, 1, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        grid = grid or (1,) * blocks
        mods = [Bottle2neck(self._inplanes, planes, stride, dilation, downsample, True, base_width, scale)]
        self._inplanes = planes * 4
        mods += [Bottle2neck(self._inplanes, planes, 1, dilation * grid[i], None, False, base_width, scale)
                 for i in range(1, blocks)]
        return nn.Sequential(*mods)

    @property
    def out_channels(self) -> list[int]:
        return [64, 256, 512, 1024, 2048]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = [x]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return tuple(outs)


def res2net50_v1b() -> Res2Net:
    return Res2Net((3, 4, 6, 3))
