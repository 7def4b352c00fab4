"""Paper designs 000 (Multi-breath), 001 (ResNet + CBAM + focal) and 003 (glance-and-gaze):
output shapes and the invariants each paper states."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from steth.edge.labels import VerdictRule
from steth.models.nets import HEAD_TEMPERATURES
from steth.models.papers.glance_gaze import GlanceGaze, GlanceGazeConfig, Shrinkage, soft_threshold
from steth.models.papers.multibreath import (
    MultiBreath,
    MultiBreathConfig,
    MultiHeadClassAttention,
    attention_pool,
    base_logit,
    marginal_logits,
)
from steth.models.papers.resnet_cbam import CBAM, ResNetCBAM, ResNetCBAMConfig
from steth.models.train import IGNORE, focal_bce, focal_ce, joint_findings_loss, loss_fn
from steth.models.verdict_fit import rule_grid
from steth.models.zoo import build_net, net_config

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"

NETS = [
    (MultiBreath, MultiBreathConfig(channels=(8, 16, 16, 32))),
    (MultiBreath, MultiBreathConfig(channels=(8, 16, 16, 32), head="fc")),
    (MultiBreath, MultiBreathConfig(channels=(8, 16, 16, 32), labels="single")),
    (ResNetCBAM, ResNetCBAMConfig(width=4)),
    (ResNetCBAM, ResNetCBAMConfig(width=4, depth=34, cbam=False)),
    (GlanceGaze, GlanceGazeConfig(channels=(4, 8, 8))),
    (GlanceGaze, GlanceGazeConfig(channels=(4, 8, 8), glance=False)),
    (GlanceGaze, GlanceGazeConfig(channels=(4, 8, 8), gaze=False)),
    (GlanceGaze, GlanceGazeConfig(channels=(4, 8, 8), ffm=False)),
]


@pytest.mark.parametrize("net_cls,config", NETS)
@pytest.mark.parametrize("channels,window", [(1, 128), (3, 64)])
def test_output_shapes_follow_the_contract(net_cls, config, channels, window):
    torch.manual_seed(0)
    net = net_cls(dataclasses.replace(config, in_channels=channels)).eval()
    findings, subtype, quality = net(torch.randn(3, channels, window, 64))
    assert findings.shape == (3, 2) and subtype.shape == (3, 7) and quality.shape == (3, 1)
    assert all(torch.isfinite(t).all() for t in (findings, subtype, quality))


@pytest.mark.parametrize("arch", ["multibreath_cnn6", "resnet_cbam", "glance_gaze"])
def test_the_registry_builds_each_paper_config(arch):
    built = 0
    for path in sorted(CONFIGS.glob("paper_*.toml")):
        data = tomllib.loads(path.read_text())
        if data.get("arch") == arch:
            net = build_net(arch, net_config(arch, data.get("net", {}))).eval()
            assert net(torch.randn(2, 1, 128, 64))[0].shape == (2, 2)
            built += 1
    assert built >= 1


def test_infinite_temperature_head_is_max_pooling():
    scores = torch.randn(4, 2, 40)
    assert torch.equal(attention_pool(scores, float("inf")), scores.amax(dim=2))
    # ... and it is the limit of the finite-temperature softmax pooling.
    assert torch.allclose(attention_pool(scores, 1e4), scores.amax(dim=2), atol=1e-3)
    # T -> 0 is average pooling.
    assert torch.allclose(attention_pool(scores, 1e-6), scores.mean(dim=2), atol=1e-4)


def test_base_logit_is_mean_over_time_then_max_plus_mean_over_frequency():
    s = torch.tensor([[[[1.0, 5.0], [3.0, -1.0]]]])  # (1, 1, T=2, F=2)
    # time means per band: (2, 2) -> max 2 + mean 2 = 4
    assert torch.allclose(base_logit(s), torch.tensor([[4.0]]))


@pytest.mark.parametrize("heads", sorted(HEAD_TEMPERATURES))
def test_every_head_count_of_the_paper_builds(heads):
    head = MultiHeadClassAttention(16, 2, heads, lam=0.3)
    assert [h.temperature for h in head.heads] == list(HEAD_TEMPERATURES[heads])
    assert head(torch.randn(2, 16, 8, 4)).shape == (2, 2)
    net = MultiBreath(MultiBreathConfig(channels=(4, 8, 8, 8), heads=heads))
    assert net(torch.randn(2, 1, 64, 64))[0].shape == (2, 2)
    with pytest.raises(ValueError):
        MultiHeadClassAttention(16, 2, 3, lam=0.3)


def test_single_head_output_is_g_plus_lambda_a():
    head = MultiHeadClassAttention(8, 2, 1, lam=0.5)
    x = torch.randn(3, 8, 4, 2)
    s = head.heads[0].classifier(x)
    expected = base_logit(s) + 0.5 * attention_pool(s.flatten(2), 1.0) + head.bias
    assert torch.allclose(head(x), expected, atol=1e-6)


def test_cbam_preserves_shape_and_reweights():
    cbam = CBAM(32, reduction=16)
    x = torch.randn(2, 32, 16, 8)
    y = cbam(x)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
    # Both attentions are sigmoid gates in (0, 1): |y| never exceeds |x|.
    assert (y.abs() <= x.abs() + 1e-6).all()


def test_cbam_sits_in_every_residual_block_only_when_asked():
    with_cbam = ResNetCBAM(ResNetCBAMConfig(width=4, depth=34))
    plain = ResNetCBAM(ResNetCBAMConfig(width=4, depth=34, cbam=False))
    n_blocks = 3 + 4 + 6 + 3
    assert sum(isinstance(m, CBAM) for m in with_cbam.modules()) == n_blocks
    assert not any(isinstance(m, CBAM) for m in plain.modules())


def test_soft_threshold_matches_its_formula_including_the_sign():
    x = torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.2, 1.0, 3.0])
    tau = torch.tensor(0.5)
    expected = torch.tensor([-2.5, -0.5, 0.0, 0.0, 0.0, 0.5, 2.5])
    assert torch.equal(soft_threshold(x, tau), expected)
    # The paper's eq. 7 as printed would give +2.5 for x = -3: the sign is kept here.
    assert soft_threshold(x, tau)[0] < 0


def test_shrinkage_threshold_is_per_channel_and_bounded_by_mean_magnitude():
    shrink = Shrinkage(6).eval()
    x = torch.randn(2, 6, 8, 4) * torch.arange(1, 7).float()[None, :, None, None]
    tau = shrink.threshold(x)
    assert tau.shape == (2, 6, 1, 1)
    assert (tau >= 0).all() and (tau <= x.abs().mean(dim=(2, 3))[..., None, None]).all()
    assert torch.equal(shrink(x), soft_threshold(x, tau))


def test_marginal_logits_are_the_log_odds_of_the_softmax_marginals():
    torch.manual_seed(3)
    joint = torch.randn(6, 4) * 4  # Normal, Crackle, Wheeze, Both
    p = torch.softmax(joint, dim=1)
    marginals = torch.sigmoid(marginal_logits(joint))
    assert torch.allclose(marginals[:, 0], p[:, 1] + p[:, 3], atol=1e-6)
    assert torch.allclose(marginals[:, 1], p[:, 2] + p[:, 3], atol=1e-6)
    # Stable where a naive log(p / (1 - p)) overflows.
    assert torch.isfinite(marginal_logits(torch.tensor([[0.0, 200.0, -200.0, 0.0]]))).all()


def test_single_label_head_trains_on_four_way_cross_entropy():
    torch.manual_seed(4)
    net = MultiBreath(MultiBreathConfig(channels=(8, 8, 8, 8), labels="single")).eval()
    x = torch.randn(4, 1, 64, 64)
    (findings, _, _), joint = net.forward_with_joint(x)
    assert joint is not None and joint.shape == (4, 4)
    assert torch.allclose(findings, net(x)[0])
    pairs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # Normal, Crackle, Wheeze, Both -> class 0, 1, 2, 3
    assert torch.allclose(joint_findings_loss(joint, pairs),
                          F.cross_entropy(joint, torch.tensor([0, 1, 2, 3])))
    with pytest.raises(ValueError, match="hard"):
        joint_findings_loss(joint, torch.full((4, 2), 0.5))
    # The trainer's loss uses the joint logits: it differs from BCE on the marginals.
    batch = {"findings": pairs, "poor": torch.zeros(4), "subtype": torch.full((4,), IGNORE)}
    out = net(x)
    with_joint = loss_fn(out, batch, None, torch.ones(7), joint)  # type: ignore[arg-type]
    bce = F.binary_cross_entropy_with_logits(findings, pairs)
    quality = F.binary_cross_entropy_with_logits(out[2][:, 0], batch["poor"])
    assert torch.allclose(with_joint, quality + F.cross_entropy(joint, torch.arange(4)))
    assert not torch.allclose(with_joint, quality + bce)
    multi = MultiBreath(MultiBreathConfig(channels=(8, 8, 8, 8))).eval()
    assert multi.forward_with_joint(x)[1] is None


def test_focal_with_gamma_0_alpha_1_equals_cross_entropy():
    torch.manual_seed(1)
    logits, target = torch.randn(10, 2), torch.randint(0, 2, (10, 2)).float()
    assert torch.allclose(focal_bce(logits, target, 0.0, 1.0),
                          F.binary_cross_entropy_with_logits(logits, target))
    logits7, target7 = torch.randn(10, 7), torch.randint(0, 7, (10,))
    weight = torch.rand(7) + 0.5
    assert torch.allclose(focal_ce(logits7, target7, 0.0, 1.0, weight),
                          F.cross_entropy(logits7, target7, weight=weight))
    assert torch.allclose(focal_ce(logits7, target7, 0.0, 1.0),
                          F.cross_entropy(logits7, target7))
    # gamma > 0 down-weights easy examples, so the loss drops below cross-entropy.
    assert focal_bce(logits, target, 2.0, 1.0) < F.binary_cross_entropy_with_logits(logits,
                                                                                     target)


def test_a_trained_run_is_scored_by_the_shared_benchmark_code(shared_data, tmp_path,
                                                              monkeypatch):
    from steth.models.benchmark import TorchCycleModel, main, run_results_path
    from steth.models.compare import tables
    from steth.models.feature_cache import default_cache_root
    from steth.models.train import TrainConfig, train

    real_features = default_cache_root() / "features"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "features").symlink_to(real_features)  # reuse the warm cache, runs go to tmp
    monkeypatch.setenv("STETH_CACHE", str(cache))
    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny"\narch = "multibreath_cnn6"\nepochs = 1\n'
                      'batch_size = 16\nmax_samples_per_epoch = 32\nmax_recordings = 8\n'
                      'threads = 1\n[net]\nchannels = [4, 8, 8, 8]\n')
    train(TrainConfig.from_toml(config), shared_data, progress=False)
    model = TorchCycleModel(config)
    frames = np.zeros((300, 64), dtype=np.float32)  # longer than a window: pooled windows
    pred = model.predict_cycle(frames)
    assert 0.0 <= pred.p_crackle <= 1.0 and abs(sum(pred.subtype_probs) - 1.0) < 1e-5
    assert main(["--run", str(config), "--data", str(shared_data), "--limit", "3",
                 "--bootstrap", "5", "--no-progress"]) == 0
    report = json.loads(run_results_path(model.run_dir).read_text())
    assert report["meta"]["parameters"] == sum(p.numel() for p in model.net.parameters())
    assert report["meta"]["macs_per_window"] >= report["meta"]["conv_linear_macs_per_window"]
    assert report["meta"]["train_cpu_minutes"] > 0
    assert {"icbhi", "1-1", "1-2", "2-1", "2-2"} <= set(report["results"])
    table = tables([config])
    assert "| tiny | multibreath_cnn6 (logmel) |" in table and "all-Normal baseline" in table
    assert report["meta"]["verdict_rule"] == VerdictRule().to_dict()
    assert report["meta"]["verdict_rule_fit"] is None
    # --fit-rule: the record rule is fit on the run's validation records, and says so.
    assert main(["--run", str(config), "--data", str(shared_data), "--limit", "3",
                 "--bootstrap", "5", "--no-progress", "--fit-rule"]) == 0
    fitted = json.loads(run_results_path(model.run_dir).read_text())["meta"]
    assert fitted["verdict_rule_fit"]["validation_records"] > 50
    assert fitted["verdict_rule"] in [r.to_dict() for r in rule_grid()]
    best = fitted["verdict_rule_fit"]["validation_scores"]["mean"]
    assert best >= fitted["verdict_rule_fit"]["default_rule_validation_scores"]["mean"] - 1e-9
    with pytest.raises(SystemExit):  # an exported model already carries its fitted rule
        main(["model.onnx", "--fit-rule"])
