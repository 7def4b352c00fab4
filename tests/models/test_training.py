"""The generalised trainer on a few real recordings: resume determinism, patient-disjoint
splits, a loss that falls for every registered design, mixup and per-channel augmentation."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from steth.models.data import patient_key, split_train_validation
from steth.models.datasets import ICBHI_SHARED_PATIENTS, load_icbhi, load_sprsound
from steth.models.train import IGNORE, TrainConfig, augment, mixup, train
from steth.models.zoo import available_archs, net_config

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"

# The smallest sensible size of each design, so that a run takes seconds.
TINY_NET: dict[str, dict] = {
    "breathnet": {"channels": [8, 16]},
    "multibreath_cnn6": {"channels": [8, 16]},
    "resnet_cbam": {"width": 4},
    "glance_gaze": {"channels": [4, 8]},
}


def tiny_config(arch: str = "breathnet", **overrides) -> TrainConfig:
    """A seconds-long run: 12 real recordings, 64 cycles an epoch, one thread.

    Designs without an entry in TINY_NET use their paper config's front end and ``[net]``.
    """
    params, frontend = TINY_NET.get(arch), {}
    if params is None:
        data = tomllib.loads((CONFIGS / f"paper_{arch}.toml").read_text())
        params, frontend = data.get("net", {}), data.get("frontend", {})
        if isinstance(frontend, str):
            frontend = {"name": frontend}
    frontend = dict(frontend)
    fields = dict(name=f"test-{arch}", arch=arch, net=net_config(arch, params), epochs=2,
                  batch_size=16, max_samples_per_epoch=64, max_recordings=12, threads=1,
                  frontend=frontend.pop("name", "logmel"), frontend_params=frontend)
    fields.update(overrides)
    return TrainConfig(**fields)


def history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def test_resuming_gives_the_identical_next_epoch(shared_data, tmp_path):
    cfg = tiny_config()
    straight = train(cfg, shared_data, progress=False, out_dir=tmp_path / "straight")
    # The same run, interrupted after epoch 1 and resumed from its checkpoint.
    resumed_dir = tmp_path / "resumed"
    train(cfg, shared_data, progress=False, out_dir=resumed_dir, stop_after=1)
    assert [h["epoch"] for h in history(resumed_dir)] == [1]
    train(cfg, shared_data, progress=False, out_dir=resumed_dir)
    a, b = history(straight), history(resumed_dir)
    assert [h["loss"] for h in a] == [h["loss"] for h in b]  # bit-identical, not close
    assert a[1]["loss"] != a[0]["loss"]  # the epochs did train
    wa = torch.load(straight / "last.pt", weights_only=False)["model"]
    wb = torch.load(resumed_dir / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert all(h["cpu_seconds"] > 0 for h in b)


def test_train_validation_test_patients_do_not_overlap(shared_data):
    train_recs = load_sprsound(shared_data, "train") + load_icbhi(shared_data, "train")
    test_recs = load_sprsound(shared_data, "test") + load_icbhi(shared_data, "test")
    shared = {f"icbhi:{p}" for p in ICBHI_SHARED_PATIENTS}
    for seed in (0, 1):
        train_part, val_part = split_train_validation(train_recs, 0.15, seed)
        tr = {patient_key(r) for r in train_part}
        va = {patient_key(r) for r in val_part}
        assert len(va) >= 20 and len(tr) > 3 * len(va)
        assert tr.isdisjoint(va)
        assert va.isdisjoint(shared)  # an official-test patient never guides selection
        # SPRSound's inter-patient test set is patient-disjoint by design; its
        # intra-patient test set holds training patients by design, so it is left out.
        inter = {patient_key(r) for r in test_recs if r.subset == "inter"}
        assert inter and inter.isdisjoint(tr | va)
        icbhi_test = {patient_key(r) for r in test_recs if r.dataset == "icbhi"}
        assert (icbhi_test & (tr | va)) <= shared


def test_the_record_rule_fit_sees_only_the_runs_validation_patients(shared_data):
    """The rule fit splits SPRSound alone; the run split SPRSound + ICBHI. Per-patient
    hashing makes the SPRSound validation patients identical, so no training record of the
    run ever tunes its record rule."""
    sprsound = load_sprsound(shared_data, "train")
    both = sprsound + load_icbhi(shared_data, "train")
    for seed in (0, 1):
        _, val_alone = split_train_validation(sprsound, 0.15, seed)
        _, val_run = split_train_validation(both, 0.15, seed)
        run_sprsound = {r.audio_path for r in val_run if r.dataset == "sprsound"}
        assert {r.audio_path for r in val_alone} == run_sprsound and run_sprsound


@pytest.mark.parametrize("arch", available_archs())
def test_a_tiny_run_on_real_recordings_lowers_the_loss(shared_data, tmp_path, arch):
    cfg = tiny_config(arch, epochs=5, augment={})
    run = train(cfg, shared_data, progress=False, out_dir=tmp_path)
    losses = [h["loss"] for h in history(run)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.9 * losses[0], losses


def test_single_label_multibreath_trains_and_lowers_the_loss(shared_data, tmp_path):
    """The paper's 4-way softmax baseline goes through the trainer's joint-logit path."""
    net = net_config("multibreath_cnn6", {"channels": [8, 16], "labels": "single"})
    cfg = tiny_config("multibreath_cnn6", epochs=5, augment={}, net=net)
    run = train(cfg, shared_data, progress=False, out_dir=tmp_path)
    losses = [h["loss"] for h in history(run)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.9 * losses[0], losses


def test_focal_and_mixup_options_train(shared_data, tmp_path):
    cfg = tiny_config(loss="focal", focal_gamma=2.0, mixup_alpha=0.4, epochs=1)
    run = train(cfg, shared_data, progress=False, out_dir=tmp_path)
    assert np.isfinite(history(run)[0]["loss"])


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss"):
        dataclasses.replace(tiny_config(), loss="hinge")


def test_mixup_mixes_inputs_and_targets_with_one_weight():
    rng = np.random.default_rng(3)
    batch = {"x": torch.randn(6, 1, 8, 4),
             "findings": torch.tensor([[1, 0], [0, 1], [IGNORE, IGNORE], [0, 0], [1, 1],
                                       [0, 1]], dtype=torch.float32),
             "subtype": torch.tensor([0, 3, IGNORE, 0, 5, 2]),
             "poor": torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.float32)}
    mixed = mixup(batch, 0.4, np.random.default_rng(3))
    lam = float(rng.beta(0.4, 0.4))
    perm = torch.from_numpy(rng.permutation(6))
    assert torch.allclose(mixed["x"], lam * batch["x"] + (1 - lam) * batch["x"][perm])
    soft = mixed["subtype"]
    both = (batch["subtype"] != IGNORE) & (batch["subtype"][perm] != IGNORE)
    assert torch.allclose(soft[both].sum(dim=1), torch.ones(int(both.sum())))
    assert (soft[~both] == 0).all()  # rows with an unknown partner are ignored
    assert (mixed["findings"][~((batch["findings"][:, 0] != IGNORE)
                                & (batch["findings"][perm, 0] != IGNORE))] == IGNORE).all()


def test_augment_masks_every_channel_alike_and_keeps_2d_input_2d():
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    x2 = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    x3 = np.repeat(x2[:, :, None], 3, axis=2)
    spec = {"time_mask": 10, "freq_mask": 6, "eq_db": 6.0}
    y2, y3 = augment(x2, rng_a, spec), augment(x3, rng_b, spec)
    assert y2.shape == x2.shape and y3.shape == x3.shape
    for c in range(3):  # identical channels stay identical: same EQ, same masked region
        np.testing.assert_allclose(y3[:, :, c], y2, rtol=1e-6, atol=1e-6)


def test_a_split_seed_gives_every_seed_the_same_validation_patients(shared_data):
    from steth.models.train import run_dir, training_recordings

    def validation(**fields) -> set[str]:
        cfg = dataclasses.replace(TrainConfig(use_icbhi=True), **fields)
        return {r.audio_path.name for r in training_recordings(cfg, shared_data)[1]}

    shared = [validation(seed=seed, split_seed=7) for seed in (0, 1, 2)]
    assert shared[0] and shared[0] == shared[1] == shared[2]
    own = [validation(seed=seed) for seed in (0, 1)]
    assert own[0] != own[1]  # without it each seed draws its own split, as before
    assert run_dir(TrainConfig(seed=1, split_seed=7)).name == "seed1-split7"
    assert run_dir(TrainConfig(seed=1)).name == "seed1"
