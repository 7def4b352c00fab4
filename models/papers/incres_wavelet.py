"""Inception-residual network with spatio-temporal focusing and multi-head attention
(paper 002, Ngo/Pham et al., BioCAS 2023 challenge Top-1), on wavelet scalograms.

Layout follows the paper's Fig. 2 as its text describes it: one Doub-Inc block (two Inc01
naive-inception layers with [3x3], [1x1], [4x1] kernels, then BN, ReLU, average pooling,
dropout, residual normalisation RN(λ = 0.4)); two Inc-Res blocks whose IncFT branch uses
[K x K] kernels (frequency and time) and whose IncT branch uses [1 x K] kernels (time only),
each branch followed by ReLU, average pooling and RN before the branches are added; a
pooling block (average over channels, max over time, average over frequency); one
multi-head attention layer per pooled map (16 heads, key dimension 32, as the paper); two
dense layers. Mixup with a KL-divergence loss is the trainer's ``mixup_alpha`` option.

Tensors are (batch, channels, time, frequency) = (B, C, T, F). The paper writes kernel sizes
as frequency x time, so its [4x1] is 4 bins by 1 frame: ``kernel_size=(1, 4)`` here, and its
[1xK] is ``(K, 1)``.

Choices the paper leaves open (stated so they can be changed): branch kernel sizes K
(``ft_kernels``, ``t_kernels``); Doub-Inc width; dropout rates; which pooled map feeds which
attention layer (the map averaged over channels attends over frequency, the map averaged
over frequency attends over time, the map max-pooled over time attends over channels); a
frequency-wise BatchNorm on the input; an adaptive pool that fixes the attention token
grid so any window length works. The paper's channels are (64, 128, 256) and its key
dimension 32; the defaults here are (16, 32, 64) and 8 (16 heads kept) to fit the 2-thread
CPU budget (``channels`` and ``attn_key_dim`` are the size knobs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class IncResWaveletConfig:
    n_bins: int = 64  # scalogram rows (wavelet scales)
    in_channels: int = 1
    channels: tuple[int, int, int] = (16, 32, 64)  # Doub-Inc, Inc-Res 1, Inc-Res 2
    ft_kernels: tuple[int, ...] = (3, 5)  # IncFT [K x K]
    t_kernels: tuple[int, ...] = (3, 7)  # IncT [1 x K]
    rn_lambda: float = 0.4
    attn_heads: int = 16
    attn_key_dim: int = 8  # paper: 32
    token_grid: tuple[int, int] = (8, 8)  # (time, frequency) positions entering attention
    hidden: int = 128  # first dense layer
    dropout: float = 0.1
    head_dropout: float = 0.3
    n_subtypes: int = 7


class ResidualNorm(nn.Module):
    """RN(x) = λ·x + FreqIN(x): instance norm per frequency bin over channels and time
    (Kim et al., DCASE 2021), which the paper applies with λ = 0.4."""

    def __init__(self, lam: float = 0.4, eps: float = 1e-5) -> None:
        super().__init__()
        self.lam, self.eps = lam, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1, F)
        var = x.var(dim=(1, 2), keepdim=True, unbiased=False)
        return self.lam * x + (x - mean) / torch.sqrt(var + self.eps)


def split_channels(total: int, parts: int) -> list[int]:
    """``total`` channels over ``parts`` branches, remainder to the first ones."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Inc01(nn.Module):
    """Naive inception layer: parallel [3x3], [1x1], [4x1] convs, outputs concatenated."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        c3, c1, c4 = split_channels(c_out, 3)
        self.branches = nn.ModuleList([
            nn.Conv2d(c_in, c3, 3, padding=1, bias=False),
            nn.Conv2d(c_in, c1, 1, bias=False),
            # the paper's [4x1] spans 4 frequency bins; even, so pad 1 below and 2 above
            nn.Sequential(nn.ZeroPad2d((1, 2, 0, 0)), nn.Conv2d(c_in, c4, (1, 4), bias=False)),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)  # (B, c_out, T, F)


class DoubInc(nn.Module):
    """Two Inc01 layers, BN, ReLU, AP[2x2], dropout, RN."""

    def __init__(self, c_in: int, c_out: int, dropout: float, lam: float) -> None:
        super().__init__()
        self.body = nn.Sequential(Inc01(c_in, c_out), Inc01(c_out, c_out), nn.BatchNorm2d(c_out),
                                  nn.ReLU(inplace=True), nn.AvgPool2d(2), nn.Dropout(dropout),
                                  ResidualNorm(lam))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, c_out, T/2, F/2)


class IncBranch(nn.Module):
    """Parallel convs with the given kernels (concatenated), BN, ReLU, AP[2x2], RN."""

    def __init__(self, c_in: int, c_out: int, kernels: list[tuple[int, int]], lam: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c, k, padding="same", bias=False)
            for c, k in zip(split_channels(c_out, len(kernels)), kernels, strict=True))
        self.post = nn.Sequential(nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.AvgPool2d(2),
                                  ResidualNorm(lam))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(torch.cat([c(x) for c in self.convs], dim=1))


class IncRes(nn.Module):
    """Inc-Res block: 1x1 projection, then IncFT [KxK] + IncT [1xK] + max-pooled shortcut."""

    def __init__(self, c_in: int, c_out: int, cfg: IncResWaveletConfig) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                                     nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        self.inc_ft = IncBranch(c_out, c_out, [(k, k) for k in cfg.ft_kernels], cfg.rn_lambda)
        self.inc_t = IncBranch(c_out, c_out, [(k, 1) for k in cfg.t_kernels], cfg.rn_lambda)
        self.shortcut = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)  # (B, c_out, T, F)
        out = self.inc_ft(x) + self.inc_t(x) + self.shortcut(x)  # (B, c_out, T/2, F/2)
        return self.dropout(out)


class AxisAttention(nn.Module):
    """Self-attention over a token sequence (B, S, D) -> one embedding (B, heads*key_dim).

    Tokens are projected to ``heads * key_dim`` so each head has the paper's key dimension
    (Keras ``MultiHeadAttention(num_heads=16, key_dim=32)``), then averaged over positions.
    """

    def __init__(self, token_dim: int, heads: int, key_dim: int) -> None:
        super().__init__()
        width = heads * key_dim
        self.embed = nn.Linear(token_dim, width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = self.embed(tokens)  # (B, S, W)
        out, _ = self.attn(t, t, t, need_weights=False)  # (B, S, W)
        return out.mean(dim=1)  # (B, W)


class IncResWavelet(nn.Module):
    """Paper 002's classifier with the project's three heads (findings, subtype, quality)."""

    def __init__(self, config: IncResWaveletConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or IncResWaveletConfig()
        self.input_bn = nn.BatchNorm2d(c.n_bins)
        c0, c1, c2 = c.channels
        self.doub_inc = DoubInc(c.in_channels, c0, c.dropout, c.rn_lambda)
        self.inc_res1 = IncRes(c0, c1, c)
        self.inc_res2 = IncRes(c1, c2, c)
        self.grid = nn.AdaptiveAvgPool2d(c.token_grid)
        t_out, f_out = c.token_grid
        self.freq_attention = AxisAttention(t_out, c.attn_heads, c.attn_key_dim)
        self.time_attention = AxisAttention(c2, c.attn_heads, c.attn_key_dim)
        self.channel_attention = AxisAttention(f_out, c.attn_heads, c.attn_key_dim)
        width = 3 * c.attn_heads * c.attn_key_dim
        self.dense = nn.Sequential(nn.Linear(width, c.hidden), nn.ReLU(inplace=True),
                                   nn.Dropout(c.head_dropout))
        self.findings = nn.Linear(c.hidden, 2)
        self.subtype = nn.Linear(c.hidden, c.n_subtypes)
        self.quality = nn.Linear(c.hidden, 1)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(x.transpose(1, 3)).transpose(1, 3)  # (B, C, T, F): per-bin scaling
        x = self.doub_inc(x)  # (B, c0, T/2, F/2)
        x = self.inc_res1(x)  # (B, c1, T/4, F/4)
        x = self.inc_res2(x)  # (B, c2, T/8, F/8)
        x = self.grid(x)  # (B, c2, t, f)
        over_channels = x.mean(dim=1)  # (B, t, f): average across channels
        over_time = x.amax(dim=2)  # (B, c2, f): max across time
        over_freq = x.mean(dim=3)  # (B, c2, t): average across frequency
        freq = self.freq_attention(over_channels.transpose(1, 2))  # f tokens of t values
        time = self.time_attention(over_freq.transpose(1, 2))  # t tokens of c2 values
        chan = self.channel_attention(over_time)  # c2 tokens of f values
        return self.dense(torch.cat([freq, time, chan], dim=1))  # (B, hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.embedding(x)
        return self.findings(h), self.subtype(h), self.quality(h)
