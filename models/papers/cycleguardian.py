"""CycleGuardian (paper 004, Chu et al. 2025): grouped hybrid spectrogram, improved deep
embedded clustering (IDEC) with cluster projection fusion (CPF), group-mix contrastive
learning, joint loss ``L_con + α·L_clu + γ·L_cos + L_cls``.

Flow for a window (B, 3, T, F) of the hybrid spectrogram (models.frontends.HybridConfig):

1. frame groups: 20 frames each, 5 frames shared with the next group (stride 15);
2. GFE unit: three CBR (conv-BN-ReLU) units and a linear layer -> group feature g_i;
3. DEC: g_i reduced to e_i (LGL: linear-GELU-LayerNorm), Student-t soft assignment q_ij to
   5 learnable centroids, target distribution p_ij (paper eq. 4, 5, per sample);
4. CPF: the g_i of each cluster (hard arg-max assignment, straight-through so q still gets
   gradients) are averaged and projected (LGL) to a cluster feature c_j; the five c_j are
   fused by learned softmax weights into the global feature z;
5. heads on z: the project's findings (2), subtype (7), quality (1) logits; L_cls is the
   trainer's shared loss.

``extra_loss`` adds the auxiliary terms from what ``forward`` cached in training mode:
L_clu = KL(p || q) (eq. 7); L_cos = Σ_{i≠j} |soft-cos(c_i, c_j)| with a learnable PSD
similarity matrix S = L·Lᵀ + εI (eq. 6, 8; the i = j terms are identically 1 and left out);
L_con between the group-mixed global feature ẑ_i and the originals (eq. 3).

Where we depart from the paper's text, and why:
- eq. 3 as printed has no normaliser, so maximising it is solved by collapsing every z to
  one vector; we use the Patch-Mix form it builds on (its ref. [30]): λ-weighted
  cross-entropy of ``h(ẑ_i)·z_n / τ`` over the batch, targets i (weight λ) and the mixing
  partner m (weight 1 − λ). λ ~ Beta(1, 1); the proportion actually kept (whole groups) is
  the λ used in the loss.
- α, γ and τ are not given in the paper: α = γ = 0.5, τ = 0.1, not tuned.
- sizes: the paper's model is 38 MB; the GFE widths here (``gfe_channels``, the size knob)
  are chosen for the 2-thread CPU budget.

Ablations (paper Table 9): ``cos_constraint=False, contrastive=False`` is "Base DEC";
``soft_cos=False`` uses plain cosine (S = I).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class CycleGuardianConfig:
    n_bins: int = 64
    in_channels: int = 3
    group_frames: int = 20
    group_overlap: int = 5
    gfe_channels: tuple[int, int, int] = (16, 32, 64)
    embed_dim: int = 128  # g_i and c_j
    cluster_dim: int = 32  # e_i
    n_clusters: int = 5
    student_t_dof: float = 1.0
    learn_dof: bool = False
    alpha: float = 0.5  # weight of L_clu
    gamma: float = 0.5  # weight of L_cos
    tau: float = 0.1
    mix_beta: float = 1.0  # λ ~ Beta(mix_beta, mix_beta)
    cos_constraint: bool = True
    soft_cos: bool = True
    contrastive: bool = True
    dropout: float = 0.2
    n_subtypes: int = 7


def group_starts(n_frames: int, group_frames: int, overlap: int) -> list[int]:
    """First frame of each group; a window shorter than one group gives one (padded) group."""
    stride = group_frames - overlap
    if stride <= 0:
        raise ValueError("group overlap must be smaller than the group length")
    if n_frames <= group_frames:
        return [0]
    return list(range(0, n_frames - group_frames + 1, stride))


def frame_groups(x: torch.Tensor, group_frames: int, overlap: int) -> torch.Tensor:
    """(B, C, T, F) -> (B, G, C, group_frames, F), zero-padding a too-short window."""
    if x.shape[2] < group_frames:
        x = F.pad(x, (0, 0, 0, group_frames - x.shape[2]))
    starts = group_starts(x.shape[2], group_frames, overlap)
    return torch.stack([x[:, :, s:s + group_frames] for s in starts], dim=1)


def soft_assignment(e: torch.Tensor, centroids: torch.Tensor, dof: torch.Tensor) -> torch.Tensor:
    """Student-t soft assignment q (…, K) of embeddings e (…, D) to centroids (K, D), eq. 4."""
    dist2 = ((e.unsqueeze(-2) - centroids) ** 2).sum(dim=-1)  # (…, K)
    kernel = (1.0 + dist2 / dof) ** (-(dof + 1.0) / 2.0)
    return kernel / kernel.sum(dim=-1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's auxiliary target p (B, G, K) from q (B, G, K), eq. 5: q² over each cluster's soft
    frequency within the sample, renormalised per group. Detached: a fixed target."""
    q = q.detach()
    weight = q ** 2 / q.sum(dim=1, keepdim=True)
    return weight / weight.sum(dim=2, keepdim=True)


def group_mix(g: torch.Tensor, lam: torch.Tensor,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
    """Replace ``round((1 - λ_b)·G)`` random groups of sample b by its partner's groups.

    Parameters
    ----------
    g : Tensor (B, G, D)
        Group features.
    lam : Tensor (B,)
        Requested proportion of each sample's own groups to keep.

    Returns
    -------
    mixed : Tensor (B, G, D)
    partner : LongTensor (B,)
        The sample whose groups were mixed in (a shuffled batch, never the sample itself
        when B > 1).
    kept : Tensor (B,)
        The proportion of own groups actually kept (whole groups), used as λ in L_con.
    """
    b, n_groups, _ = g.shape
    shift = int(torch.randint(1, b, (1,), generator=generator)) if b > 1 else 0
    partner = (torch.arange(b) + shift) % b  # a derangement: nobody mixes with itself
    n_replace = torch.round((1.0 - lam) * n_groups).long().clamp(0, n_groups)
    ranks = torch.rand(b, n_groups, generator=generator).argsort(dim=1).argsort(dim=1)
    replace = ranks < n_replace[:, None]  # (B, G): n_replace random positions per sample
    mixed = torch.where(replace[..., None], g[partner], g)
    kept = 1.0 - n_replace.float() / n_groups
    return mixed, partner, kept


class CBR(nn.Module):
    """Conv3x3-BN-ReLU, then 2x2 max pooling when ``pool``."""

    def __init__(self, c_in: int, c_out: int, pool: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(2) if pool else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def lgl(d_in: int, d_out: int) -> nn.Sequential:
    """The paper's LGL unit: Linear, GELU, LayerNorm."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.LayerNorm(d_out))


class GFE(nn.Module):
    """Group feature embedding: three CBR units and a linear layer, one vector per group."""

    def __init__(self, cfg: CycleGuardianConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.gfe_channels
        self.convs = nn.Sequential(CBR(cfg.in_channels, c1, True), CBR(c1, c2, True),
                                   CBR(c2, c3, False))
        self.pool = nn.AdaptiveAvgPool2d((1, 4))  # keep a coarse frequency profile
        self.linear = lgl(4 * c3, cfg.embed_dim)

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        b, n_groups = groups.shape[:2]
        x = groups.flatten(0, 1)  # (B*G, C, 20, F)
        x = self.convs(x)  # (B*G, c3, 5, F/4)
        x = self.pool(x).flatten(1)  # (B*G, 4*c3)
        return self.linear(x).view(b, n_groups, -1)  # (B, G, D)


class SoftCosine(nn.Module):
    """|cᵢᵀ S cⱼ| / sqrt((cᵢᵀ S cᵢ)(cⱼᵀ S cⱼ)) with S = L·Lᵀ + εI learnable (PSD, so the
    norms are real); ``learnable=False`` fixes S = I (plain cosine)."""

    def __init__(self, dim: int, learnable: bool, eps: float = 1e-3) -> None:
        super().__init__()
        self.factor = nn.Parameter(torch.eye(dim), requires_grad=learnable)
        self.eps = eps

    def matrix(self) -> torch.Tensor:
        eye = torch.eye(self.factor.shape[0], device=self.factor.device)
        return self.factor @ self.factor.T + self.eps * eye

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """Pairwise |soft-cos| (B, K, K) of cluster features c (B, K, D)."""
        s = self.matrix()
        gram = c @ s @ c.transpose(1, 2)  # (B, K, K)
        norms = gram.diagonal(dim1=1, dim2=2).clamp_min(1e-8).sqrt()  # (B, K)
        return (gram / (norms[:, :, None] * norms[:, None, :])).abs()


class CycleGuardian(nn.Module):
    """CycleGuardian with the project's heads; ``extra_loss`` supplies L_con, L_clu, L_cos."""

    def __init__(self, config: CycleGuardianConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or CycleGuardianConfig()
        self.gfe = GFE(c)
        self.reduce = lgl(c.embed_dim, c.cluster_dim)  # g_i -> e_i
        self.centroids = nn.Parameter(torch.randn(c.n_clusters, c.cluster_dim))
        self.log_dof = nn.Parameter(torch.tensor(float(c.student_t_dof)).log(),
                                    requires_grad=c.learn_dof)
        self.cluster_project = lgl(c.embed_dim, c.embed_dim)  # CPF: cluster mean -> c_j
        self.fusion_score = nn.Linear(c.embed_dim, 1)  # CPF: adaptive fusion weights
        self.soft_cos = SoftCosine(c.embed_dim, learnable=c.soft_cos)
        d = c.embed_dim
        self.projector = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True),
                                       nn.Linear(d, d))  # h(·) of eq. 3
        self.dropout = nn.Dropout(c.dropout)
        self.findings = nn.Linear(d, 2)
        self.subtype = nn.Linear(d, c.n_subtypes)
        self.quality = nn.Linear(d, 1)
        self._cache: dict[str, torch.Tensor] = {}

    def groups(self, x: torch.Tensor) -> torch.Tensor:
        """Group features g (B, G, D) of a window (B, C, T, F)."""
        c = self.config
        return self.gfe(frame_groups(x, c.group_frames, c.group_overlap))

    def cluster(self, g: torch.Tensor) -> dict[str, torch.Tensor]:
        """DEC + CPF: soft assignment q (B, G, K), cluster features c (B, K, D), global z."""
        q = soft_assignment(self.reduce(g), self.centroids, self.log_dof.exp())
        hard = F.one_hot(q.argmax(dim=-1), q.shape[-1]).to(q.dtype)
        assign = hard + q - q.detach()  # forward: hard; backward: through q
        counts = hard.sum(dim=1).clamp_min(1.0)  # (B, K)
        means = assign.transpose(1, 2) @ g / counts[..., None]  # (B, K, D)
        clusters = self.cluster_project(means)  # (B, K, D)
        weights = torch.softmax(self.fusion_score(clusters), dim=1)  # (B, K, 1)
        z = (weights * clusters).sum(dim=1)  # (B, D)
        return {"q": q, "clusters": clusters, "z": z}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.groups(x)  # (B, G, D)
        out = self.cluster(g)
        if self.training:
            self._cache = {"g": g, **out}
        else:
            self._cache = {}
        h = self.dropout(out["z"])
        return self.findings(h), self.subtype(h), self.quality(h)

    def clustering_loss(self, q: torch.Tensor) -> torch.Tensor:
        """L_clu = Σ_groups Σ_clusters p·ln(p/q), averaged over the batch (eq. 7)."""
        p = target_distribution(q)
        return (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(dim=(1, 2)).mean()

    def cosine_loss(self, clusters: torch.Tensor) -> torch.Tensor:
        """L_cos = Σ_{i≠j} |soft-cos(c_i, c_j)|, averaged over the batch (eq. 8)."""
        sim = self.soft_cos(clusters)  # (B, K, K)
        off_diagonal = ~torch.eye(sim.shape[1], dtype=torch.bool, device=sim.device)
        return sim[:, off_diagonal].sum(dim=1).mean()

    def contrastive_loss(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Group-mix contrastive loss (Patch-Mix form of eq. 3) on cached group features."""
        b = g.shape[0]
        if b < 2:
            return g.new_zeros(())
        lam = torch.distributions.Beta(self.config.mix_beta, self.config.mix_beta).sample((b,))
        mixed, partner, kept = group_mix(g, lam)
        z_mix = self.cluster(mixed)["z"]
        logits = F.normalize(self.projector(z_mix), dim=1) @ F.normalize(z, dim=1).T
        log_p = F.log_softmax(logits / self.config.tau, dim=1)  # (B, B)
        own = log_p[torch.arange(b), torch.arange(b)]
        other = log_p[torch.arange(b), partner]
        return -(kept * own + (1.0 - kept) * other).mean()

    def extra_loss(self, x: torch.Tensor, outputs: tuple[torch.Tensor, ...],
                   batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L_con + α·L_clu + γ·L_cos for the last training forward pass (labels unused)."""
        del outputs, batch  # the auxiliary terms are label-free
        if not self._cache:  # called without a training forward pass (e.g. in eval mode)
            g = self.groups(x)
            self._cache = {"g": g, **self.cluster(g)}
        cache, c = self._cache, self.config
        loss = c.alpha * self.clustering_loss(cache["q"])
        if c.cos_constraint:
            loss = loss + c.gamma * self.cosine_loss(cache["clusters"])
        if c.contrastive:
            loss = loss + self.contrastive_loss(cache["g"], cache["z"])
        self._cache = {}
        return loss
