"""Paper designs 002 (inception-residual on wavelet scalograms) and 004 (CycleGuardian):
output contract, the invariants the papers state, and a tiny real-data training step."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from steth.models.nets import count_parameters
from steth.models.papers.cycleguardian import (
    CycleGuardian,
    CycleGuardianConfig,
    SoftCosine,
    frame_groups,
    group_mix,
    group_starts,
    soft_assignment,
    target_distribution,
)
from steth.models.papers.incres_wavelet import IncResWavelet, IncResWaveletConfig, ResidualNorm
from tests.conftest import note_loaded


@pytest.fixture(autouse=True)
def one_thread():
    """Torch's thread pool spins badly on a shared 2-core machine; these small nets need one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def check_heads(outputs: tuple[torch.Tensor, ...], batch: int) -> None:
    findings, subtype, quality = outputs
    assert findings.shape == (batch, 2)
    assert subtype.shape == (batch, 7)
    assert quality.shape == (batch, 1)
    assert all(torch.isfinite(t).all() for t in outputs)


@pytest.mark.parametrize("frames", [128, 64])
def test_incres_wavelet_output_contract(frames: int) -> None:
    torch.manual_seed(0)
    model = IncResWavelet().eval()
    check_heads(model(torch.randn(3, 1, frames, 64)), 3)


def test_incres_wavelet_size_knob_changes_the_network() -> None:
    small = IncResWavelet(IncResWaveletConfig(channels=(8, 16, 32), attn_key_dim=4))
    paper = IncResWavelet(IncResWaveletConfig(channels=(64, 128, 256), attn_key_dim=32))
    assert count_parameters(small) < count_parameters(IncResWavelet()) < count_parameters(paper)
    check_heads(small.eval()(torch.randn(2, 1, 128, 64)), 2)


def test_residual_norm_matches_its_formula() -> None:
    x = torch.randn(2, 4, 10, 6)
    mean = x.mean(dim=(1, 2), keepdim=True)
    std = x.var(dim=(1, 2), keepdim=True, unbiased=False).add(1e-5).sqrt()
    expected = 0.4 * x + (x - mean) / std
    torch.testing.assert_close(ResidualNorm(0.4)(x), expected)


def test_cycleguardian_output_contract() -> None:
    torch.manual_seed(0)
    model = CycleGuardian().eval()
    check_heads(model(torch.randn(3, 3, 128, 64)), 3)
    check_heads(model(torch.randn(2, 3, 12, 64)), 2)  # shorter than one group: padded


@pytest.mark.parametrize("n_frames, expected", [(128, 8), (20, 1), (35, 2), (34, 1), (12, 1),
                                                 (626, 41)])
def test_frame_group_count(n_frames: int, expected: int) -> None:
    starts = group_starts(n_frames, 20, 5)
    assert len(starts) == expected
    assert all(b - a == 15 for a, b in itertools.pairwise(starts))  # 5 shared
    groups = frame_groups(torch.randn(2, 3, n_frames, 64), 20, 5)
    assert groups.shape == (2, expected, 3, 20, 64)


def test_frame_groups_hold_the_right_frames() -> None:
    x = torch.arange(128, dtype=torch.float32).view(1, 1, 128, 1).expand(1, 3, 128, 4)
    groups = frame_groups(x, 20, 5)
    assert groups[0, 1, 0, 0, 0] == 15 and groups[0, 1, 0, -1, 0] == 34
    assert groups[0, 0, 0, -5:, 0].tolist() == groups[0, 1, 0, :5, 0].tolist()  # overlap 5


def test_soft_assignment_is_student_t_and_sums_to_one() -> None:
    e = torch.randn(4, 8, 6)
    centroids = torch.randn(5, 6)
    q = soft_assignment(e, centroids, torch.tensor(1.0))
    torch.testing.assert_close(q.sum(dim=-1), torch.ones(4, 8))
    assert (q > 0).all()
    d2 = ((e[0, 0] - centroids) ** 2).sum(dim=1)
    kernel = 1.0 / (1.0 + d2)  # α = 1: (1 + d²)^-1
    torch.testing.assert_close(q[0, 0], kernel / kernel.sum())


def test_target_distribution_properties() -> None:
    q = torch.softmax(torch.randn(3, 8, 5), dim=-1)
    p = target_distribution(q)
    torch.testing.assert_close(p.sum(dim=-1), torch.ones(3, 8))
    assert (p >= 0).all() and not p.requires_grad
    f = q.sum(dim=1, keepdim=True)
    expected = (q ** 2 / f) / (q ** 2 / f).sum(dim=-1, keepdim=True)
    torch.testing.assert_close(p, expected)
    # with equal cluster frequencies p = q²/Σq²: sharper, same winner
    sym = torch.tensor([[[0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.6]]])
    p_sym = target_distribution(sym)
    torch.testing.assert_close(p_sym, sym ** 2 / (sym ** 2).sum(dim=-1, keepdim=True))
    assert (p_sym.amax(dim=-1) > sym.amax(dim=-1)).all()
    assert (p_sym.argmax(dim=-1) == sym.argmax(dim=-1)).all()


@pytest.mark.parametrize("lam, kept_groups", [(0.75, 6), (0.5, 4), (1.0, 8), (0.0, 0)])
def test_group_mix_keeps_the_stated_proportion(lam: float, kept_groups: int) -> None:
    batch, n_groups = 5, 8
    ids = torch.arange(batch, dtype=torch.float32)[:, None, None].expand(batch, n_groups, 3)
    gen = torch.Generator().manual_seed(7)
    mixed, partner, kept = group_mix(ids, torch.full((batch,), lam), gen)
    assert (partner != torch.arange(batch)).all()
    for b in range(batch):
        own = int((mixed[b, :, 0] == b).sum())
        assert own == kept_groups
        assert int((mixed[b, :, 0] == partner[b]).sum()) == n_groups - kept_groups
    torch.testing.assert_close(kept, torch.full((batch,), kept_groups / n_groups))


def test_soft_cosine_with_identity_is_absolute_cosine() -> None:
    c = torch.randn(2, 5, 16)
    sim = SoftCosine(16, learnable=False)(c)
    cos = torch.nn.functional.cosine_similarity(c[:, :, None], c[:, None, :], dim=-1).abs()
    torch.testing.assert_close(sim, cos, atol=1e-3, rtol=1e-3)  # S = I + εI


def test_extra_loss_is_finite_with_gradients_for_every_term() -> None:
    torch.manual_seed(0)
    model = CycleGuardian().train()
    x = torch.randn(6, 3, 128, 64)
    loss = model.extra_loss(x, model(x), {})
    assert torch.isfinite(loss) and loss.ndim == 0
    loss.backward()
    for name in ("centroids", "soft_cos.factor", "projector.0.weight", "gfe.convs.0.body.0.weight",
                 "reduce.0.weight", "cluster_project.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_base_dec_ablation_drops_the_constraint_and_contrastive_terms() -> None:
    torch.manual_seed(0)
    model = CycleGuardian(CycleGuardianConfig(cos_constraint=False, contrastive=False)).train()
    x = torch.randn(4, 3, 128, 64)
    out = model(x)
    loss = model.extra_loss(x, out, {})
    expected = model.config.alpha * model.clustering_loss(model.cluster(model.groups(x))["q"])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.soft_cos.factor.grad is None
    assert model.projector[0].weight.grad is None


# ------------------------------------------------------------ tiny real-data training


def real_batch(root: Path, frontend, window: int, tmp_path: Path):
    from steth.models.data import build_sample_set
    from steth.models.datasets import load_sprsound
    from steth.models.train import TrainConfig, make_batch, subtype_class_weights

    recordings = [r for r in load_sprsound(root, "train") if r.events][:6]
    sample_set = build_sample_set(recordings, frontend, window, cache_root=tmp_path)
    note_loaded("sprsound (paper B front ends)", len(recordings))
    samples = sample_set.samples[:16]
    cfg = TrainConfig(window=window)
    batch = make_batch(samples, sample_set, cfg, np.random.default_rng(0), train=False)
    return cfg, batch, subtype_class_weights(samples)


def loss_at(model, batch, cfg, sub_w) -> torch.Tensor:
    from steth.models.train import training_loss

    torch.manual_seed(123)  # the same dropout masks and group-mix draws at every look
    return training_loss(model, batch, cfg, sub_w)


@pytest.mark.parametrize("arch", ["incres_wavelet", "cycleguardian"])
def test_tiny_training_on_real_recordings_lowers_the_loss(arch: str, shared_data: Path,
                                                          tmp_path: Path) -> None:
    from steth.models.frontends import HybridConfig, WaveletConfig
    from steth.models.train import mixup

    torch.manual_seed(0)
    if arch == "incres_wavelet":
        frontend = WaveletConfig()
        model = IncResWavelet(IncResWaveletConfig(channels=(8, 16, 32), attn_key_dim=4))
    else:
        frontend = HybridConfig()
        model = CycleGuardian(CycleGuardianConfig(gfe_channels=(8, 16, 32), embed_dim=64))
    cfg, batch, sub_w = real_batch(shared_data, frontend, 64, tmp_path)
    assert batch["x"].shape[1:] == (frontend.channels, 64, 64)
    if arch == "incres_wavelet":  # the paper trains with mixup and a KL loss
        batch = mixup(batch, 0.4, np.random.default_rng(1))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = float(loss_at(model, batch, cfg, sub_w).detach())
    for _ in range(12):
        opt.zero_grad()
        loss_at(model, batch, cfg, sub_w).backward()
        opt.step()
    after = float(loss_at(model, batch, cfg, sub_w).detach())
    assert np.isfinite(before) and after < 0.9 * before, (before, after)
