"""Networks. Shapes in comments are (batch, channels, time, mel) unless stated.

``BreathNet`` is the deployable model: a small CNN (PANNs-style conv blocks) with the
multi-label, multi-head class-specific residual attention head of the Multi-breath paper
(CSRA-style: base = average of the class score map, attention = temperature-softmax pooling
of it, T = inf being max pooling, combined as g + λ·a), plus a 7-class subtype head and a
signal-quality head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

HEAD_TEMPERATURES: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (1.0, float("inf")),
    4: (1.0, 2.0, 3.0, float("inf")),
    6: (1.0, 2.0, 3.0, 4.0, 5.0, float("inf")),
}


class ConvBlock(nn.Module):
    """Conv3x3-BN-ReLU, ``n_convs`` times, then average pooling."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int], n_convs: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(pool) if pool != (1, 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x))


class ClassSpecificAttention(nn.Module):
    """Multi-head class-specific residual attention over a feature map's positions.

    Scores ``s = W·x_j`` for each class and position; base ``g`` = mean of ``s`` over
    positions; head ``h`` pools ``s`` with softmax weights at temperature ``T_h``
    (T = inf: max); output ``g + λ·mean_h(a_h)``.
    """

    def __init__(self, channels: int, n_classes: int, heads: int = 2, lam: float = 0.3) -> None:
        super().__init__()
        if heads not in HEAD_TEMPERATURES:
            raise ValueError(f"heads must be one of {sorted(HEAD_TEMPERATURES)}")
        self.temperatures = HEAD_TEMPERATURES[heads]
        self.lam = lam
        self.score = nn.Conv1d(channels, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.score(x)  # (B, N, P): class scores per position
        g = s.mean(dim=2)  # (B, N)
        heads = []
        for t in self.temperatures:
            if t == float("inf"):
                heads.append(s.amax(dim=2))  # (B, N)
            else:
                heads.append((torch.softmax(s * t, dim=2) * s).sum(dim=2))  # (B, N)
        a = torch.stack(heads, dim=0).mean(dim=0)  # (B, N)
        return g + self.lam * a


@dataclass(frozen=True)
class BreathNetConfig:
    n_mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 128)
    heads: int = 2
    lam: float = 0.3
    n_subtypes: int = 7
    dropout: float = 0.2


class BreathNet(nn.Module):
    """Compact crackle/wheeze network with subtype and quality outputs.

    Input: log-mel window (B, 1, T, M). Outputs (logits): findings (B, 2) = (crackle,
    wheeze), subtype (B, 7) over the SPRSound event classes, quality (B, 1) = poor signal.
    """

    def __init__(self, config: BreathNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or BreathNetConfig()
        self.bn0 = nn.BatchNorm2d(c.n_mels)
        blocks, c_in = [], 1
        for i, c_out in enumerate(c.channels):
            blocks.append(ConvBlock(c_in, c_out, (2, 2), n_convs=1 if i == 0 else 2))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(c.dropout)
        self.findings = ClassSpecificAttention(c_in, 2, c.heads, c.lam)
        self.subtype = ClassSpecificAttention(c_in, c.n_subtypes, c.heads, c.lam)
        self.quality = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x - x.mean(dim=(2, 3), keepdim=True)  # (B, 1, T, M): gain becomes a no-op
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # (B, 1, T, M): per-mel scaling
        x = self.blocks(x)  # (B, C, T/16, M/16)
        x = x.mean(dim=3)  # (B, C, T/16): pool frequency, keep time positions
        x = self.dropout(x)
        findings = self.findings(x)  # (B, 2)
        subtype = self.subtype(x)  # (B, 7)
        quality = self.quality(x.mean(dim=2))  # (B, 1)
        return findings, subtype, quality


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of the conv and linear layers for one input (hooks, no guess)."""
    total = 0

    def conv_hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d | nn.Conv1d):
            kernel = int(torch.tensor(module.kernel_size).prod())
            total += out.numel() // out.shape[0] * kernel * module.in_channels // module.groups
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules()
             if isinstance(m, nn.Conv2d | nn.Conv1d | nn.Linear)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape[1:]))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
