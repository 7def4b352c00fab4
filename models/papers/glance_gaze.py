"""Glance-and-gaze network (Yu, Ding, Qian et al., paper 003).

Three stages (32, 64, 128 channels in the paper; ``channels`` is the size knob), each a
glance-and-gaze module, a feature fusion module (FFM) and 2x2 max pooling.

- Glance (sec. 2.1.1): frequency descriptor = mean over time, time descriptor = mean over
  frequency (eq. 1-2); a 1-D conv ``v`` and a softmax give weights over frequency bands and
  time steps (eq. 3). The weights are multiplied by the axis length so that uniform
  attention is the identity; the paper gives no scale, and a bare softmax would shrink the
  map by 1/F and 1/T.
- Gaze (sec. 2.1.2): 3x3 then 5x5 conv (each with BN; ReLU between), then residual
  shrinkage (Zhao et al., DRSN-CW, the paper's ref. [15]): per-channel threshold
  ``tau_c = mean(|S'_c|) * sigmoid(FC(FC(.)))``, and standard soft-thresholding
  ``sign(x) * max(|x| - tau, 0)``. The paper's eq. 7 drops the sign (it maps a negative x
  to max(0, -x - tau) >= 0); we keep it, as in DRSN and Donoho's soft-thresholding.
  Output ``S'' = S + S_thre`` (eq. 8; a 1x1 projection of S when the channels change).
- Outputs ``S_f = S'' * w_f`` and ``S_t = S'' * w_t`` (eq. 9).
- FFM (sec. 2.2): two parallel 1x1 convs, element-wise sum, then channel re-weighting by
  GAP + two FC layers + sigmoid.

``glance``, ``gaze`` and ``ffm`` switch the parts off as in the paper's ablation (Table 1).
The paper's head is "FC"; here global average pooling feeds the project's three heads.

Shapes: (batch, channels, time, frequency).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def soft_threshold(x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Standard soft-thresholding ``sign(x) * max(|x| - tau, 0)`` (tau >= 0, broadcast)."""
    return torch.sign(x) * torch.relu(x.abs() - tau)


class Glance(nn.Module):
    """Softmax weights over frequency bands and over time steps from average descriptors."""

    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.v = nn.Conv1d(channels, 1, kernel, padding=kernel // 2)  # shared kernel v

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = s.mean(dim=2)  # (B, C, F): eq. 1
        t = s.mean(dim=3)  # (B, C, T): eq. 2
        w_f = torch.softmax(self.v(f), dim=2) * f.shape[2]  # (B, 1, F): eq. 3
        w_t = torch.softmax(self.v(t), dim=2) * t.shape[2]  # (B, 1, T)
        return w_f[:, :, None, :], w_t[:, :, :, None]  # broadcastable to (B, C, T, F)


class Shrinkage(nn.Module):
    """Residual-shrinkage thresholding with a learned per-channel threshold (DRSN-CW)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels), nn.BatchNorm1d(channels),
                                nn.ReLU(inplace=True), nn.Linear(channels, channels),
                                nn.Sigmoid())

    def threshold(self, x: torch.Tensor) -> torch.Tensor:
        g = x.abs().mean(dim=(2, 3))  # (B, C): GAP of |S'|
        return (g * self.fc(g))[:, :, None, None]  # (B, C, 1, 1), 0 <= tau <= mean|S'|

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_threshold(x, self.threshold(x))


class Gaze(nn.Module):
    """3x3 and 5x5 convs, shrinkage, plus the (projected) input: S'' = S + S_thre."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 5, padding=2, bias=False), nn.BatchNorm2d(c_out))
        self.shrink = Shrinkage(c_out)
        self.shortcut: nn.Module = (nn.Identity() if c_in == c_out else
                                    nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                                                  nn.BatchNorm2d(c_out)))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.shortcut(s) + self.shrink(self.convs(s))  # (B, C', T, F)


class FeatureFusion(nn.Module):
    """FFM: 1x1 conv per branch, sum, then SE-style channel re-weighting."""

    def __init__(self, c_in: int, c_out: int, reduction: int = 4) -> None:
        super().__init__()
        self.proj_f = nn.Conv2d(c_in, c_out, 1)
        self.proj_t = nn.Conv2d(c_in, c_out, 1)
        hidden = max(1, c_out // reduction)
        self.se = nn.Sequential(nn.Linear(c_out, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, c_out), nn.Sigmoid())

    def forward(self, s_f: torch.Tensor, s_t: torch.Tensor) -> torch.Tensor:
        fused = self.proj_f(s_f) + self.proj_t(s_t)  # (B, C', T, F)
        w = self.se(fused.mean(dim=(2, 3)))  # (B, C')
        return fused * w[:, :, None, None]


class GlanceGazeStage(nn.Module):
    """Glance-and-gaze module + FFM + BN/ReLU + 2x2 max pooling (one of three stages)."""

    def __init__(self, c_in: int, c_out: int, glance: bool, gaze: bool, ffm: bool,
                 kernel: int) -> None:
        super().__init__()
        self.glance = Glance(c_in, kernel) if glance else None
        self.gaze = Gaze(c_in, c_out) if gaze else None
        width = c_out if gaze else c_in
        self.ffm = FeatureFusion(width, c_out) if (ffm and glance) else None
        self.proj = nn.Conv2d(width, c_out, 1) if self.ffm is None else None
        self.post = nn.Sequential(nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(2))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        s2 = self.gaze(s) if self.gaze is not None else s  # (B, C', T, F)
        if self.glance is None:  # "w/o glance": nothing to fuse
            assert self.proj is not None
            out = self.proj(s2)
        else:
            w_f, w_t = self.glance(s)
            s_f, s_t = s2 * w_f, s2 * w_t  # eq. 9
            if self.ffm is not None:
                out = self.ffm(s_f, s_t)
            else:  # "w/o FFM": plain element-wise addition
                assert self.proj is not None
                out = self.proj(s_f + s_t)
        return self.post(out)  # (B, C', T/2, F/2)


@dataclass(frozen=True)
class GlanceGazeConfig:
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 128)  # the paper's stage widths
    glance_kernel: int = 3  # not given in the paper
    glance: bool = True
    gaze: bool = True
    ffm: bool = True
    dropout: float = 0.2
    n_subtypes: int = 7


class GlanceGaze(nn.Module):
    """Glance-and-gaze network with the project's three heads (paper 003).

    Input (B, C, T, F); outputs findings (B, 2), subtype (B, 7), quality (B, 1) logits.
    """

    def __init__(self, config: GlanceGazeConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or GlanceGazeConfig()
        self.norm = nn.BatchNorm2d(c.in_channels)  # input scaling (the paper normalises)
        stages, c_in = [], c.in_channels
        for c_out in c.channels:
            stages.append(GlanceGazeStage(c_in, c_out, c.glance, c.gaze, c.ffm,
                                          c.glance_kernel))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(c.dropout)
        self.findings = nn.Linear(c_in, 2)
        self.subtype = nn.Linear(c_in, c.n_subtypes)
        self.quality = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stages(self.norm(x))  # (B, C', T/8, F/8)
        x = self.dropout(x.mean(dim=(2, 3)))  # (B, C')
        return self.findings(x), self.subtype(x), self.quality(x)
