"""Multi-breath (Chua & Cheng, paper 000): a CNN6 backbone with a multi-label head and
multi-head class-specific residual attention.

What the paper specifies and where it is here:
- CNN6 backbone (PANNs): four blocks of one 5x5 conv + BN + ReLU + 2x2 average pooling,
  64-128-256-512 channels; ``channels`` is the size knob (we train a narrower one).
- Multi-label findings: two sigmoid outputs (crackle, wheeze), tau = 0.5, mapped back to the
  four ICBHI classes by :meth:`edge.infer.CyclePrediction.finding`.
- Classifier: class scores ``s = C_i . x_j`` at every (time, frequency) position of the
  final feature map (eq. 2-3, CSRA); base ``g`` = mean over time, then max + mean over
  frequency (eq. 4-7); attention ``a`` = softmax(T s)-weighted sum of ``s`` (T = inf is max
  pooling); output ``g + lambda a`` (eq. 8). H heads with the paper's temperatures
  (models.nets.HEAD_TEMPERATURES) each have their own classifier and are summed, as in CSRA.
- Time/frequency masking: the trainer's ``augment`` (configured per experiment).
- The paper's single-label baseline (``labels = "single"``): one 4-way softmax over
  Normal / Crackle / Wheeze / Both, trained with cross-entropy through :meth:`forward_with_joint`.
  :meth:`forward` still returns two findings logits, the log-odds of the softmax's crackle
  and wheeze marginals, so evaluation, export and the edge treat both arms alike.

Shapes: (batch, channels, time, frequency).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from steth.models.nets import HEAD_TEMPERATURES


def attention_pool(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Class-specific attention pooling of scores (B, N, P) over positions -> (B, N).

    ``sum_j softmax_j(T s_j) s_j``; T = inf is the limit, max pooling.
    """
    if temperature == float("inf"):
        return scores.amax(dim=2)
    return (torch.softmax(scores * temperature, dim=2) * scores).sum(dim=2)


def base_logit(score_map: torch.Tensor) -> torch.Tensor:
    """The paper's g (eq. 4-7): mean over time, then max + mean over frequency.

    ``score_map`` (B, N, T, F) -> (B, N).
    """
    per_band = score_map.mean(dim=2)  # (B, N, F)
    return per_band.amax(dim=2) + per_band.mean(dim=2)


class ResidualAttentionHead(nn.Module):
    """One head: its own 1x1 classifier and temperature, output g + lambda a."""

    def __init__(self, channels: int, n_classes: int, temperature: float, lam: float) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(channels, n_classes, 1, bias=False)
        self.temperature = temperature
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.classifier(x)  # (B, N, T, F) class score per position
        a = attention_pool(s.flatten(2), self.temperature)  # (B, N)
        return base_logit(s) + self.lam * a  # (B, N)


def marginal_logits(joint: torch.Tensor) -> torch.Tensor:
    """Log-odds of crackle and of wheeze from 4-way logits in edge.labels.FOUR_CLASSES order
    (Normal, Crackle, Wheeze, Both).

    ``p(crackle) = p(Crackle) + p(Both)``; its logit is a difference of log-sum-exps, exact
    and stable for any logits.
    """
    n, c, w, b = joint.unbind(dim=1)  # each (B,)
    crackle = torch.logsumexp(torch.stack([c, b]), 0) - torch.logsumexp(torch.stack([n, w]), 0)
    wheeze = torch.logsumexp(torch.stack([w, b]), 0) - torch.logsumexp(torch.stack([n, c]), 0)
    return torch.stack([crackle, wheeze], dim=1)  # (B, 2)


class MultiHeadClassAttention(nn.Module):
    """H heads with the paper's temperature sequence (H in {1, 2, 4, 6}), summed."""

    def __init__(self, channels: int, n_classes: int, heads: int, lam: float) -> None:
        super().__init__()
        if heads not in HEAD_TEMPERATURES:
            raise ValueError(f"heads must be one of {sorted(HEAD_TEMPERATURES)}, not {heads}")
        self.heads = nn.ModuleList(ResidualAttentionHead(channels, n_classes, t, lam)
                                   for t in HEAD_TEMPERATURES[heads])
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([h(x) for h in self.heads]).sum(dim=0) + self.bias  # (B, N)


class Cnn6Block(nn.Module):
    """PANNs CNN6 block: 5x5 conv (no bias) + BN + ReLU, 2x2 average pooling, dropout."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.pool = nn.AvgPool2d(2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.pool(torch.relu(self.bn(self.conv(x)))))


class Cnn6Classifier(nn.Module):
    """PANNs CNN6's own classifier (the paper's baseline): mean over frequency, max + mean
    over time, a fully connected layer."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=3)  # (B, C, T)
        return self.fc(x.amax(dim=2) + x.mean(dim=2))  # (B, N)


@dataclass(frozen=True)
class MultiBreathConfig:
    in_channels: int = 1
    n_bins: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 256)  # paper: (64, 128, 256, 512)
    kernel: int = 5
    heads: int = 2  # 1, 2, 4 or 6
    head: str = "attention"  # or "fc": the CNN6 classifier the paper's attention replaces
    lam: float = 0.3  # not given in the paper; the deployable BreathNet's value
    labels: str = "multi"  # or "single": the paper's 4-way softmax baseline
    dropout: float = 0.2  # PANNs CNN6's dropout after each block
    n_subtypes: int = 7


class MultiBreath(nn.Module):
    """CNN6 + multi-label, multi-head class-specific residual attention (paper 000).

    Input (B, C, T, F); outputs findings (B, 2), subtype (B, 7), quality (B, 1) logits.
    """

    def __init__(self, config: MultiBreathConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or MultiBreathConfig()
        self.bn0 = nn.BatchNorm2d(c.n_bins)  # per-bin scaling, as PANNs' bn0
        blocks, c_in = [], c.in_channels
        for c_out in c.channels:
            blocks.append(Cnn6Block(c_in, c_out, c.kernel, c.dropout))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        if c.labels not in ("multi", "single"):
            raise ValueError(f"labels must be 'multi' or 'single', not {c.labels!r}")
        n_findings = 2 if c.labels == "multi" else 4
        if c.head == "attention":
            self.findings: nn.Module = MultiHeadClassAttention(c_in, n_findings, c.heads, c.lam)
            self.subtype: nn.Module = MultiHeadClassAttention(c_in, c.n_subtypes, c.heads,
                                                              c.lam)
        elif c.head == "fc":
            self.findings = Cnn6Classifier(c_in, n_findings)
            self.subtype = Cnn6Classifier(c_in, c.n_subtypes)
        else:
            raise ValueError(f"head must be 'attention' or 'fc', not {c.head!r}")
        self.quality = nn.Linear(c_in, 1)

    def forward_with_joint(self, x: torch.Tensor
                           ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                                      torch.Tensor | None]:
        """The usual outputs plus, single-label only, the (B, 4) logits the loss needs."""
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # (B, C, T, F)
        x = self.blocks(x)  # (B, C', T/16, F/16)
        findings = self.findings(x)  # (B, 2) multi-label or (B, 4) single-label
        subtype = self.subtype(x)  # (B, 7)
        quality = self.quality(x.mean(dim=(2, 3)))  # (B, 1)
        if self.config.labels == "single":
            return (marginal_logits(findings), subtype, quality), findings
        return (findings, subtype, quality), None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.forward_with_joint(x)[0]
