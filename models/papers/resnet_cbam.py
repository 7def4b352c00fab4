"""ResNet-18/34 with CBAM in every residual block (Oshima, Kamiya & Kido, paper 001).

The paper adds CBAM (Woo et al. 2018: channel attention, then spatial attention) "after the
convolution in the residual blocks" of a ResNet-34 (also reported for ResNet-18) and trains
with focal loss (its eq. 1, alpha and gamma not given; the trainer's ``loss = "focal"``).
Here CBAM refines the residual branch before the shortcut is added, as in the CBAM paper;
``cbam = false`` gives the plain ResNet the paper compares against. ``width`` is the size
knob (64 in the paper; the stage widths are width x 1, 2, 4, 8). The paper's single 4-class
softmax is replaced by the shared heads of the project contract (findings, subtype, quality)
on the globally average-pooled features.

Shapes: (batch, channels, time, frequency).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

STAGE_BLOCKS: dict[int, tuple[int, ...]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class ChannelAttention(nn.Module):
    """CBAM channel attention: shared MLP on the average- and max-pooled descriptors."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False),
                                 nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))  # (B, C, 1, 1)
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))  # (B, C, 1, 1); faster than amax on CPU
        return x * torch.sigmoid(avg + mx)  # (B, C, T, F)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: a 7x7 conv over the channel mean and max maps."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True),
                          x.max(dim=1, keepdim=True).values], dim=1)  # (B, 2, T, F)
        return x * torch.sigmoid(self.conv(maps))  # (B, C, T, F)


class CBAM(nn.Module):
    """Channel attention followed by spatial attention; the shape is unchanged."""

    def __init__(self, channels: int, reduction: int = 16, kernel: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN [-CBAM] + shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, cbam: bool, reduction: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.cbam = CBAM(c_out, reduction) if cbam else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))  # (B, C', T/s, F/s)
        y = self.cbam(self.bn2(self.conv2(y)))  # (B, C', T/s, F/s)
        return torch.relu(y + self.shortcut(x))


@dataclass(frozen=True)
class ResNetCBAMConfig:
    in_channels: int = 1
    depth: int = 18  # 18 or 34
    width: int = 16  # paper: 64
    cbam: bool = True
    reduction: int = 16  # CBAM's channel-MLP reduction (the CBAM paper's value)
    dropout: float = 0.2
    n_subtypes: int = 7


class ResNetCBAM(nn.Module):
    """ResNet-18/34 (+ CBAM per block) with the project's three heads (paper 001).

    Input (B, C, T, F); outputs findings (B, 2), subtype (B, 7), quality (B, 1) logits.
    """

    def __init__(self, config: ResNetCBAMConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ResNetCBAMConfig()
        if c.depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, not {c.depth}")
        self.norm = nn.BatchNorm2d(c.in_channels)  # input scaling (the paper normalises)
        self.stem = nn.Sequential(  # ImageNet ResNet stem: /4 in time and frequency
            nn.Conv2d(c.in_channels, c.width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(c.width), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        c_in = c.width
        for stage, n_blocks in enumerate(STAGE_BLOCKS[c.depth]):
            c_out = c.width * 2 ** stage
            for i in range(n_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, c.cbam, c.reduction))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(c.dropout)
        self.findings = nn.Linear(c_in, 2)
        self.subtype = nn.Linear(c_in, c.n_subtypes)
        self.quality = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(self.norm(x))  # (B, w, T/4, F/4)
        x = self.blocks(x)  # (B, 8w, T/32, F/32)
        x = self.dropout(x.mean(dim=(2, 3)))  # (B, 8w) global average pooling
        return self.findings(x), self.subtype(x), self.quality(x)
